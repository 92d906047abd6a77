/**
 * Free TCP ports on 127.0.0.1 for servers that cannot be told "port 0" (a
 * NATS cluster's routes, an embedded nats-server in a config file). Bind to
 * port 0, read the port the kernel chose, close. A small race remains (another
 * process could take it before our server binds); tests retry start-up once.
 */
import { createServer } from 'node:net';

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}
