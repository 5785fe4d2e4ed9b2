/**
 * ACT attention calibration (Yu et al. 2024, arXiv 2406.15765; heads/act-calibration.ts) in `attend bench`: a method
 * written with `"act": "PATH"` (e.g. {"press": "full", "act": "models/attend-mini/act-calibration.json"}) runs its
 * cells on the model wrapped with withActCalibration, the file being what `attend heads --probe sinks --calibrate-act`
 * writes and `attend generate --act` reads. The file is read once, when the sweep is expanded, and the calibration
 * itself (β, threshold, heads) goes into each cell, so a results line says what ran and a changed file makes new cells.
 * ACT changes every forward after its first calibrated layer, so its cells never join a shared prefill
 * (eval/shared-prefill.ts canShare): each prefills on the calibrated model, as a run of its own does.
 */
import { AttendError, check } from '../errors.js';
import { readActCalibration, withActCalibration } from '../heads/act-calibration.js';
import type { LoadedModel } from '../models/load.js';
import type { ActCell, CellKey } from './types.js';

/** Reads a method's calibration file for the sweep; one-line errors naming `where` and the file. */
export function readActCell(path: string, where: string): ActCell {
  let cal;
  try {
    cal = readActCalibration(path);
  } catch (e) {
    if (e instanceof AttendError) throw new AttendError(`${where}: "act": ${e.message.replace(/^--act: /, '')}`.split('\n')[0]!);
    throw e;
  }
  const heads = cal.heads as unknown;
  check(Array.isArray(heads) && heads.length > 0 && heads.every((h) => Number.isInteger(h?.layer) && h.layer >= 0 && Number.isInteger(h?.head) && h.head >= 0),
    () => `${where}: "act": ${path} must list the heads it calibrates, "heads": [{"layer": 6, "head": 5}, …] (got ${JSON.stringify(heads)?.slice(0, 60)})`);
  check(Number.isFinite(cal.beta) && cal.beta >= 0 && cal.beta <= 1, `${where}: "act": ${path}: beta must be in [0, 1], got ${cal.beta}`);
  check(Number.isFinite(cal.threshold) && cal.threshold >= 0 && cal.threshold <= 1, `${where}: "act": ${path}: threshold must be in [0, 1], got ${cal.threshold}`);
  return { path, beta: cal.beta, threshold: cal.threshold, heads: cal.heads.map(({ layer, head }) => ({ layer, head })) };
}

/** The model a cell runs on: `lm` itself, or with the cell's ACT calibration on every forward. */
export function modelOfCell(lm: LoadedModel, key: Pick<CellKey, 'act'>): LoadedModel {
  if (!key.act) return lm;
  const { beta, threshold, heads } = key.act;
  return { ...lm, model: withActCalibration(lm.model, { method: 'act', beta, threshold, heads }) };
}

/** How tables and the report name it: "ACT on 2 heads: 6.5, 6.4" (the heads listed up to four). */
export function actLabel(act: ActCell): string {
  const n = act.heads.length;
  const list = n <= 4 ? `: ${act.heads.map((h) => `${h.layer}.${h.head}`).join(', ')}` : '';
  return `ACT on ${n} head${n === 1 ? '' : 's'}${list}`;
}
