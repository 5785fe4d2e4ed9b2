/**
 * The bench HTML report in a real browser: Debian's Chromium (headless, through playwright-core, which downloads no
 * browser) opens it from file://, with no console message of type error and no page error, and every plot's SVG is
 * visible with a non-zero size. Layout checks: no card (section, plot, table) scrolls sideways; every SVG text
 * (tick labels, axis titles, facet headers, legend entries) lies inside its SVG's box, is not cut short with an
 * ellipsis, and no two axis titles or headers collide; the predictions table opens and fits.
 * ATTEND_REPORT_FILE=path checks that report (e.g. a real `npm start` one) as well; ATTEND_REPORT_SCREENSHOT=path
 * saves a screenshot of the top of the page (the real report's where one is given).
 * Skipped, saying why, where Chromium is missing (ATTEND_CHROMIUM overrides /usr/bin/chromium).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { type Browser, chromium, type Page } from 'playwright-core';
import { writeReport } from '../../src/eval/report/index.js';
import { syntheticCells } from '../../src/eval/report/synthetic.js';
import type { CellResult } from '../../src/eval/types.js';

const executablePath = process.env.ATTEND_CHROMIUM ?? '/usr/bin/chromium';
const skip = fs.existsSync(executablePath) ? false
  : `Chromium not found at ${executablePath}: apt-get install chromium (or set ATTEND_CHROMIUM) to run the browser check of the report`;

let browser: Browser;
let dir: string;
before(async () => {
  if (skip) return;
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-report-browser-'));
  browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
});
after(async () => {
  await browser?.close();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

/** Opens a report file, collecting errors and any request that leaves the file. */
async function open(file: string): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1500 } });
  // tsx names the functions of page.evaluate's callbacks with a helper the page does not have.
  await page.addInitScript('globalThis.__name = (f) => f;');
  const errors: string[] = [];
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`console: ${m.text()}`);
  });
  page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
  page.on('request', (r) => {
    if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) errors.push(`request: ${r.url()}`);
  });
  await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });
  return { page, errors };
}

/** Everything that is laid out wrong: sideways scrolling, text outside its SVG, cut text, colliding titles. */
async function layoutProblems(page: Page): Promise<string[]> {
  await page.locator('details').evaluateAll((els) => els.forEach((e) => e.setAttribute('open', '')));
  return page.evaluate(() => {
    const problems: string[] = [];
    const name = (el: Element) => el.closest('[data-plot]')?.getAttribute('data-plot') ?? el.closest('section')?.id ?? el.tagName;
    for (const el of document.querySelectorAll('section, figure.plot .svg, .table-wrap')) {
      if (el.scrollWidth > el.clientWidth + 1) problems.push(`${name(el)}: ${el.className || el.tagName} scrolls sideways (${el.scrollWidth} > ${el.clientWidth})`);
    }
    for (const svg of document.querySelectorAll('figure.plot svg')) {
      const box = svg.getBoundingClientRect();
      const titles: Array<{ text: string; r: DOMRect }> = [];
      for (const t of svg.querySelectorAll('text')) {
        const text = t.textContent ?? '';
        if (!text.trim()) continue;
        const r = t.getBoundingClientRect();
        if (r.left < box.left - 1 || r.right > box.right + 1 || r.top < box.top - 1 || r.bottom > box.bottom + 1) {
          problems.push(`${name(svg)}: text "${text}" lies outside its SVG`);
        }
        if (text.endsWith('…')) problems.push(`${name(svg)}: text "${text}" is cut short`);
        const role = t.closest('g[class*="role-"]')?.getAttribute('class') ?? '';
        if (/role-(axis-title|column-title|row-title|header-label|column-header|row-header|title)/.test(role) || /-header/.test(role)) titles.push({ text, r });
      }
      for (let i = 0; i < titles.length; i++) {
        for (let j = i + 1; j < titles.length; j++) {
          const a = titles[i]!.r;
          const b = titles[j]!.r;
          const overlap = Math.min(a.right, b.right) - Math.max(a.left, b.left) > 1 && Math.min(a.bottom, b.bottom) - Math.max(a.top, b.top) > 1;
          if (overlap) problems.push(`${name(svg)}: "${titles[i]!.text}" and "${titles[j]!.text}" collide`);
        }
      }
    }
    return problems;
  });
}

async function checkPlots(page: Page, ids: string[]): Promise<void> {
  for (const id of ids) {
    const svg = page.locator(`figure[data-plot="${id}"] svg`);
    assert.equal(await svg.count(), 1, `${id}: one svg`);
    await svg.scrollIntoViewIfNeeded();
    assert.ok(await svg.isVisible(), `${id} is visible`);
    const box = await svg.boundingBox();
    assert.ok(box && box.width > 100 && box.height > 100, `${id} has a size: ${JSON.stringify(box)}`);
    const marks = await svg.locator('path, rect, line').count();
    assert.ok(marks > 10, `${id} draws marks (${marks})`);
  }
}

const queryAware = (cells: CellResult[]) => cells.map((c) => ({ ...c, queryAware: c.method !== 'full' }));

test('the report opens in headless Chromium without errors, shows every plot, and nothing is clipped or overflows', { skip, timeout: 120_000 }, async () => {
  const file = path.join(dir, 'report.html');
  const cells = syntheticCells({ seeds: [0] });
  await writeReport(file, cells, {
    title: 'attend bench — attend-mini (synthetic cells)',
    command: 'attend bench --model models/attend-mini --methods full,snapkv,streaming-llm,knorm,random --ratios 0.25,0.5,0.75',
  });
  const { page, errors } = await open(file);
  const ids = await page.locator('figure.plot').evaluateAll((els) => els.map((e) => e.getAttribute('data-plot')));
  assert.deepEqual(ids, ['accuracy-budget', 'needle-heatmap', 'memory', 'speed']);
  await checkPlots(page, ids as string[]);
  // Every method has its own accuracy panel (no line hides another): one facet header per budgeted method.
  const headers = await page.locator('figure[data-plot="accuracy-budget"] svg g[class*="role-title-text"] text').allTextContents();
  for (const m of ['snapkv', 'streaming-llm', 'knorm', 'random']) assert.ok(headers.includes(m), `a panel for ${m}: ${headers}`);
  assert.ok((await page.locator('table[data-table="accuracy"] tbody tr').count()) === 13);
  assert.ok((await page.locator('table[data-table="cost"] tbody tr').count()) > 10);
  assert.deepEqual(await layoutProblems(page), []);
  assert.equal(await page.locator('table.predictions tbody tr').count(), cells.length);
  assert.deepEqual(errors, []);
  await page.close();
});

test('a run like npm start: one budget, query-aware, five depths; and a single-depth run has no depth map', { skip, timeout: 120_000 }, async () => {
  const file = path.join(dir, 'quick.html');
  const cells = queryAware(syntheticCells({ methods: ['full', 'streaming-llm', 'snapkv', 'pyramidkv', 'h2o'], ratios: [0.5], contextLengths: [1024, 2048], seeds: [0, 1, 2, 3] }));
  await writeReport(file, cells, { title: 'Attend bench: quick on attend-mini', command: 'npm start (attend bench --preset quick)' });
  const { page, errors } = await open(file);
  const ids = await page.locator('figure.plot').evaluateAll((els) => els.map((e) => e.getAttribute('data-plot')));
  assert.deepEqual(ids, ['accuracy-budget', 'needle-heatmap', 'memory', 'speed']);
  await checkPlots(page, ids as string[]);
  assert.match(await page.locator('#summary').innerText(), /query-aware: the question was in the cache/);
  assert.deepEqual(await layoutProblems(page), []);
  assert.deepEqual(errors, []);
  await page.close();

  const single = path.join(dir, 'single.html');
  await writeReport(single, syntheticCells({ depths: [0.5] }), { title: 'one depth' });
  const one = await open(single);
  assert.equal(await one.page.locator('#needle').count(), 0, 'no depth map with one depth');
  assert.deepEqual(await layoutProblems(one.page), []);
  await one.page.close();
});

test('a given report (ATTEND_REPORT_FILE, e.g. npm start\'s) passes the same checks', { skip: skip || (process.env.ATTEND_REPORT_FILE ? false : 'set ATTEND_REPORT_FILE to check a report of your own'), timeout: 120_000 }, async () => {
  const { page, errors } = await open(path.resolve(process.env.ATTEND_REPORT_FILE!));
  const ids = await page.locator('figure.plot').evaluateAll((els) => els.map((e) => e.getAttribute('data-plot')));
  assert.ok(ids.includes('accuracy-budget'));
  await checkPlots(page, ids as string[]);
  assert.deepEqual(await layoutProblems(page), []);
  assert.deepEqual(errors, []);
  const shot = process.env.ATTEND_REPORT_SCREENSHOT;
  if (shot) {
    await page.locator('details').evaluateAll((els) => els.forEach((e) => e.removeAttribute('open')));
    await page.evaluate(() => window.scrollTo(0, 0));
    await page.screenshot({ path: shot, type: 'png' });
  }
  await page.close();
});
