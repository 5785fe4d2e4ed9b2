/** The report's stylesheet, inlined into the page: system fonts, a centred column, cards for plots, quiet tables. */
export const STYLE = `
:root { color-scheme: light; --fg: #1d1d1f; --muted: #6b6b73; --line: #e3e3e8; --bg: #f6f6f8; --card: #fff; --accent: #4e79a7; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
header { background: var(--card); border-bottom: 1px solid var(--line); }
header .inner, main, footer { max-width: 1240px; margin: 0 auto; padding: 0 24px; }
header .inner { padding-top: 20px; padding-bottom: 12px; }
h1 { font-size: 24px; margin: 0 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 18px; margin: 0 0 12px; }
h3 { font-size: 15px; margin: 0 0 8px; }
.sub { color: var(--muted); margin: 0 0 10px; }
nav { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 14px; }
nav a { color: var(--accent); text-decoration: none; }
nav a:hover { text-decoration: underline; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 18px 20px; margin: 20px 0; }
figure.plot { margin: 0 0 16px; }
figure.plot:last-child { margin-bottom: 0; }
figure.plot .svg { overflow-x: auto; }
figure.plot svg { display: block; max-width: 100%; height: auto; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 4px; }
p.note { color: var(--muted); background: #fafafc; border: 1px dashed var(--line); border-radius: 8px; padding: 10px 14px; margin: 0 0 12px; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; font-size: 13.5px; }
th, td { padding: 5px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { position: sticky; top: 0; background: var(--card); border-bottom: 2px solid #cfcfd6; white-space: nowrap; font-weight: 600; }
table.summary tbody tr:nth-child(even) { background: #fafafc; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.acc { background: linear-gradient(90deg, transparent var(--lo), #8fb3d6 var(--lo), #8fb3d6 var(--hi), transparent var(--hi)) bottom / 100% 3px no-repeat,
  linear-gradient(90deg, #dce8f4 var(--v), transparent var(--v)); }
table.predictions td { font-size: 12.5px; padding: 3px 8px; }
td.mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
td.pred { overflow-wrap: anywhere; max-width: 28em; }
.ok { color: #2e7d32; white-space: nowrap; }
.bad { color: #b3261e; white-space: nowrap; }
details summary { cursor: pointer; color: var(--accent); margin-bottom: 8px; }
h3 + .table-wrap { margin-bottom: 14px; }
table.meta th { color: var(--muted); font-weight: 500; white-space: nowrap; width: 1%; }
.swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; vertical-align: baseline; }
.muted { color: var(--muted); }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 0.92em; background: #f0f0f3; padding: 1px 5px; border-radius: 4px; word-break: break-all; }
footer { color: var(--muted); font-size: 12.5px; padding-bottom: 28px; }
`;
