// The API's pino logger: authorization headers, cookies and passwords never reach the log. Lines are
// written asynchronously (sonic-boom coalesces them while a write is in flight, so a busy server makes
// far fewer write syscalls than one per line) and flushed synchronously when the process exits.
import pino from 'pino';

export const REDACT = [
  'req.headers.authorization',
  'req.headers["proxy-authorization"]',
  'req.headers.cookie',
  'res.headers["set-cookie"]',
  '*.password',
  'password',
];

export function makeLogger(level: string): pino.Logger {
  return pino({ name: 'api', level, redact: { paths: REDACT, censor: '[redacted]' } }, pino.destination({ dest: 1, sync: false }));
}
