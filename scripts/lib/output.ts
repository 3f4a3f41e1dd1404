// Script output: one prefix, errors to stderr, and a fail() that ends the process with a message.
const isTty = process.stderr.isTTY;
export function log(msg: string): void {
  process.stderr.write(`${isTty ? '\x1b[36mballast\x1b[0m' : 'ballast'}: ${msg}\n`);
}
export function fail(msg: string, code = 1): never {
  process.stderr.write(`${isTty ? '\x1b[31mballast: error\x1b[0m' : 'ballast: error'}: ${msg}\n`);
  process.exit(code);
}
