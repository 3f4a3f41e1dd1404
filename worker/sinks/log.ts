// Log sink, for development: writes what would be invalidated (count and the first tags) to the log.
import type pino from 'pino';
import type { Sink } from './sink.ts';

export function logSink(logger: pino.Logger): Sink {
  return {
    name: 'log',
    async deliver(tags) {
      logger.info({ sink: 'log', count: tags.length, tags: tags.slice(0, 20) }, `invalidate ${tags.length} cache tag(s)`);
      logger.debug({ sink: 'log', tags }, 'all invalidated tags');
    },
    async close() {},
  };
}
