// OpenTelemetry spans, exported over OTLP/HTTP (JSON) when OTEL_EXPORTER_OTLP_ENDPOINT (or
// OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: the API's HTTP request, its GraphQL operation and its
// database transactions; the worker's tasks (worker/trace.ts). Unset, nothing of the SDK is even loaded:
// the request path only checks `telemetry === null`. The SDK is loaded with a dynamic import at start
// (startTelemetry → ready), spans are batched (BatchSpanProcessor) and flushed at shutdown. Spans are
// parented explicitly (no context manager, no global registration): an application's own OpenTelemetry
// setup is left alone. Shared by the API and the worker.
import type { Attributes, Span, SpanKind, Tracer } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { TraceContext } from './trace_context.ts';

export type TelemetrySettings = {
  /** Where spans are POSTed: the traces endpoint itself (…/v1/traces). */
  tracesUrl: string;
  serviceName: string;
  /** BatchSpanProcessor's delay between exports (OTEL_BSP_SCHEDULE_DELAY, default 5000). */
  scheduleDelayMs: number;
};

/** The caller's span, as parseTraceparent reads it. */
export type RemoteParent = { traceId: string; parentSpanId: string; flags: number };

type Api = typeof import('@opentelemetry/api');

/** A started OpenTelemetry tracer provider, or the promise of one. */
export type Telemetry = {
  /** Resolves when the SDK is loaded; spans asked for before that are not recorded. */
  ready: Promise<void>;
  /** A span, child of `parent`: a span of this process, or the caller's span from a traceparent (parseTraceparent). */
  startSpan: (name: string, o: { kind?: 'server' | 'internal' | 'client' | 'consumer'; parent?: Span | RemoteParent; attributes?: Attributes }) => Span | null;
  /** Ends a span with an error status. */
  fail: (span: Span, e: unknown) => void;
  /** Exports what is waiting and stops (bounded by timeoutMs). */
  shutdown: (timeoutMs?: number) => Promise<void>;
};

/** The endpoint from the standard variables (the traces one is used as is; the general one gets /v1/traces), or null. */
export function telemetrySettingsFromEnv(env: NodeJS.ProcessEnv, defaultServiceName: string, problems: string[]): TelemetrySettings | null {
  const traces = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || undefined;
  const general = env.OTEL_EXPORTER_OTLP_ENDPOINT || undefined;
  if ((env.OTEL_SDK_DISABLED ?? '').toLowerCase() === 'true') return null;
  if (traces === undefined && general === undefined) return null;
  const name = traces !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT' : 'OTEL_EXPORTER_OTLP_ENDPOINT';
  const raw = (traces ?? general)!;
  let url: URL;
  try {
    url = new URL(raw);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
  } catch {
    problems.push(`${name} must be an http:// or https:// URL of an OTLP/HTTP receiver (e.g. http://otel-collector:4318), got "${raw}"`);
    return null;
  }
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL || env.OTEL_EXPORTER_OTLP_PROTOCOL || 'http/json';
  if (protocol !== 'http/json') {
    problems.push(`OTEL_EXPORTER_OTLP_PROTOCOL: ballast exports spans as OTLP/HTTP JSON; set http/json (or leave it unset), got "${protocol}"`);
  }
  const delayText = env.OTEL_BSP_SCHEDULE_DELAY || '5000';
  const scheduleDelayMs = Number(delayText);
  if (!Number.isInteger(scheduleDelayMs) || scheduleDelayMs < 1 || scheduleDelayMs > 600_000) {
    problems.push(`OTEL_BSP_SCHEDULE_DELAY must be a whole number of milliseconds from 1 to 600000, got "${delayText}"`);
  }
  const tracesUrl = traces !== undefined ? url.href : `${url.href.replace(/\/+$/, '')}/v1/traces`;
  return { tracesUrl, serviceName: env.OTEL_SERVICE_NAME || defaultServiceName, scheduleDelayMs };
}

const KINDS = { server: 1, client: 2, consumer: 4, internal: 0 } as const satisfies Record<string, SpanKind>;

/** Loads the SDK and starts a tracer provider exporting to settings.tracesUrl. */
export function startTelemetry(settings: TelemetrySettings, logger: Logger, version = '0'): Telemetry {
  let api: Api | null = null;
  let tracer: Tracer | null = null;
  let provider: { shutdown: () => Promise<void>; forceFlush: () => Promise<void> } | null = null;
  const ready = (async () => {
    const [otel, sdk, exporter, resources] = await Promise.all([
      import('@opentelemetry/api'),
      import('@opentelemetry/sdk-trace'),
      import('@opentelemetry/exporter-trace-otlp-http'),
      import('@opentelemetry/resources'),
    ]);
    const p = new sdk.TracerProvider({
      resource: resources.resourceFromAttributes({ 'service.name': settings.serviceName, 'service.version': version }),
      spanProcessors: [new sdk.BatchSpanProcessor({ exporter: new exporter.OTLPTraceExporter({ url: settings.tracesUrl }), scheduledDelayMillis: settings.scheduleDelayMs })],
    });
    api = otel;
    provider = p;
    tracer = p.getTracer('ballast', version);
    logger.info({ url: settings.tracesUrl, service: settings.serviceName }, 'exporting OpenTelemetry spans (OTLP/HTTP JSON)');
  })().catch((e: unknown) => {
    logger.error({ err: e }, 'OpenTelemetry could not start: no spans are exported');
  });
  return {
    ready,
    startSpan(name, o) {
      if (!tracer || !api) return null;
      let ctx = api.ROOT_CONTEXT;
      const parent = o.parent;
      if (parent && 'spanContext' in parent) {
        ctx = api.trace.setSpan(ctx, parent);
      } else if (parent) {
        ctx = api.trace.setSpanContext(ctx, { traceId: parent.traceId, spanId: parent.parentSpanId, traceFlags: parent.flags, isRemote: true });
      }
      return tracer.startSpan(name, { kind: KINDS[o.kind ?? 'internal'], attributes: o.attributes }, ctx);
    },
    fail(span, e) {
      if (!api) return;
      if (e instanceof Error) span.recordException(e);
      span.setStatus({ code: api.SpanStatusCode.ERROR, message: e instanceof Error ? e.message : String(e) });
    },
    async shutdown(timeoutMs = 3000) {
      await ready;
      if (!provider) return;
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        provider.shutdown().catch((e: unknown) => logger.warn({ err: e }, 'OpenTelemetry: exporting the last spans failed')),
        new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); }),
      ]);
      clearTimeout(timer);
    },
  };
}

/** The W3C trace context of a span of ours. */
export function traceOf(span: Span, parentSpanId?: string): TraceContext {
  const c = span.spanContext();
  return { traceId: c.traceId, spanId: c.spanId, flags: c.traceFlags, ...(parentSpanId ? { parentSpanId } : {}) };
}
