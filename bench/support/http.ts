/** The benchmarks' HTTP client for the service: JSON requests with an API key over keep-alive sockets. */
import { Agent, request } from 'node:http';

export interface Reply {
  status: number;
  body: string;
}

/** A keep-alive client (at most `sockets` open at once), so latency is the service's, not connection set-up. */
export function client(port: number, apiKey: string, sockets: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: sockets });
  return (method: string, path: string, body?: unknown): Promise<Reply> =>
    new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = request(
        { host: '127.0.0.1', port, method, path, agent, headers: { authorization: `Bearer ${apiKey}`, ...(payload ? { 'content-type': 'application/json' } : {}) } },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (text += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
        },
      );
      req.on('error', reject);
      req.end(payload);
    });
}
