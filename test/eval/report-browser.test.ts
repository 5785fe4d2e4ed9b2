/**
 * The bench HTML report in a real browser: Debian's Chromium (headless, through playwright-core, which downloads no
 * browser) opens it from file://, with no console message of type error and no page error, and every plot's SVG is
 * visible with a non-zero size. ATTEND_REPORT_SCREENSHOT=path saves a screenshot of the top of the page.
 * Skipped, saying why, where Chromium is missing (ATTEND_CHROMIUM overrides /usr/bin/chromium).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { writeReport } from '../../src/eval/report/index.js';
import { syntheticCells } from '../../src/eval/report/synthetic.js';

const executablePath = process.env.ATTEND_CHROMIUM ?? '/usr/bin/chromium';
const skip = fs.existsSync(executablePath) ? false
  : `Chromium not found at ${executablePath}: apt-get install chromium (or set ATTEND_CHROMIUM) to run the browser check of the report`;

test('the report opens in headless Chromium without errors and shows every plot', { skip, timeout: 60_000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'attend-report-browser-'));
  const browser = await chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  try {
    const file = path.join(dir, 'report.html');
    await writeReport(file, syntheticCells({ seeds: [0] }), {
      title: 'attend bench — attend-mini (synthetic cells)',
      command: 'attend bench --model models/attend-mini --methods full,snapkv,streaming-llm,knorm,random --ratios 0.25,0.5,0.75',
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 1500 } });
    const errors: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error') errors.push(`console: ${m.text()}`);
    });
    page.on('pageerror', (e) => errors.push(`page: ${e.message}`));
    page.on('request', (r) => {
      if (!r.url().startsWith('file:') && !r.url().startsWith('data:')) errors.push(`request: ${r.url()}`);
    });
    await page.goto(pathToFileURL(file).href, { waitUntil: 'load' });

    const ids = await page.locator('figure.plot').evaluateAll((els) => els.map((e) => e.getAttribute('data-plot')));
    assert.deepEqual(ids, ['accuracy-budget', 'needle-heatmap', 'memory', 'speed']);
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
    assert.ok(await page.locator('table.summary tbody tr').count() > 10);
    assert.deepEqual(errors, []);

    const shot = process.env.ATTEND_REPORT_SCREENSHOT;
    if (shot) {
      await page.evaluate(() => window.scrollTo(0, 0));
      await page.screenshot({ path: shot, type: 'png' });
    }
  } finally {
    await browser.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
