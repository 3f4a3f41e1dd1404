// Runs fn once when the response is finished or the connection closed before it was (client gone).
import type { ServerResponse } from 'node:http';

export function onDone(res: ServerResponse, fn: () => void): void {
  let done = false;
  const once = () => {
    if (done) return;
    done = true;
    res.off('finish', once);
    res.off('close', once);
    fn();
  };
  res.on('finish', once);
  res.on('close', once);
}

/** The status to record: the response's, or 499 (nginx's "client closed request") when it never finished. */
export function finalStatus(res: ServerResponse): number {
  return res.writableFinished || res.headersSent ? res.statusCode : 499;
}

export function isProbe(url: string | undefined): boolean {
  return url === '/health/live' || url === '/health/ready' || url === '/metrics';
}
