// ballast_report_error: posts an API error report (queued by the API for 5xx responses through
// ballast.enqueue_error_reports(), see api/error_reports.ts) as JSON to ERROR_REPORT_URL. A network error,
// a timeout (ERROR_REPORT_TIMEOUT_MS), a 5xx, 408 or 429 throws, so graphile-worker retries the job with
// exponential backoff (up to its max_attempts, 10). Any other 4xx means the endpoint will never take this
// report: logged as an error, not retried. Without ERROR_REPORT_URL the report is only logged (at error
// level): the worker log is the sink.
// Redirects are not followed: the report (and any credentials a deployment adds to the request) goes to
// ERROR_REPORT_URL and nowhere else. A 3xx is logged with its Location and dropped: it will not change
// on retry; set ERROR_REPORT_URL to the final address.
import type { Task } from 'graphile-worker';
import { errorReportConfig, type ErrorReportConfig } from '../config.ts';

// Set by run() (configureErrorReports); in an app's own runner, read from the environment at the first job.
let settings: ErrorReportConfig | undefined;

/** Where this process's error-report jobs post to (run() calls it with workerConfigFromEnv()'s errorReports). */
export function configureErrorReports(config: ErrorReportConfig): void {
  settings = config;
}

export const report_error: Task = async (payload, helpers) => {
  const { url, timeoutMs } = (settings ??= errorReportConfig(process.env));
  const report = { source: 'ballast-api', attempt: helpers.job.attempts, ...(payload as Record<string, unknown>) };
  if (!url) {
    helpers.logger.error(`API error report (ERROR_REPORT_URL unset, logged only): ${JSON.stringify(report)}`);
    return;
  }
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'user-agent': 'ballast-worker ballast_report_error' },
    body: JSON.stringify(report),
    redirect: 'manual',
    signal: AbortSignal.any([helpers.abortSignal, AbortSignal.timeout(timeoutMs)]),
  });
  await res.arrayBuffer().catch(() => undefined); // release the connection
  if (res.ok) return;
  if (res.status >= 300 && res.status < 400) {
    helpers.logger.error(`ERROR_REPORT_URL answered ${res.status}, a redirect to ${JSON.stringify(res.headers.get('location') ?? '(no Location)')}: not followed, report dropped; set ERROR_REPORT_URL to the final address: ${JSON.stringify(report)}`);
    return;
  }
  if (res.status >= 500 || res.status === 408 || res.status === 429) {
    throw new Error(`ERROR_REPORT_URL answered ${res.status}; will retry`);
  }
  helpers.logger.error(`ERROR_REPORT_URL answered ${res.status}: report dropped (a 4xx will not succeed on retry): ${JSON.stringify(report)}`);
};
