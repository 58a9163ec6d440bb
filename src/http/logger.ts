/** pino options shared by the HTTP app and the worker role, so every log line looks alike. */
import type { LoggerOptions } from 'pino';
import type { LogLevel } from '../config.js';

/** JSON lines on stdout; API keys never reach the logs. */
export function loggerOptions(level: LogLevel): LoggerOptions {
  return {
    level,
    redact: { paths: ['req.headers.authorization', 'headers.authorization'], censor: '[redacted]' },
  };
}
