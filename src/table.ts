// A plain-text table for terminals and CI logs (the CLI's and the scripts' output).
export function formatTable(head: string[], rows: string[][]): string {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (c ?? '').padEnd(widths[i])).join('  ').trimEnd();
  return [line(head), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n') + '\n';
}
export function printTable(head: string[], rows: string[][]): void {
  process.stdout.write(formatTable(head, rows));
}
