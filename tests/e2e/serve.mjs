// Starts `braid serve` on free ports and resolves with its ports once the
// ready line appears. Shared by the end-to-end tests.
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

export function startBraid(binary, args = []) {
  const child = spawn(binary, ['serve', '--host', '127.0.0.1', '--http-port', '0', '--grpc-port', '0',
                               '--metrics-port', '0', ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const lines = createInterface({ input: child.stdout });
    const timer = setTimeout(() => reject(new Error('braid serve printed no ready line')), 60000);
    lines.once('line', (line) => {
      clearTimeout(timer);
      const match = /^braid ready http=([^:]+):(\d+) grpc=([^:]+):(\d+) metrics=([^:]+):(\d+)$/.exec(line);
      if (!match) return reject(new Error(`unexpected ready line: ${line}`));
      resolve({
        child,
        http: Number(match[2]),
        grpc: Number(match[4]),
        metrics: Number(match[6]),
        stop: () => new Promise((done) => { child.once('exit', (code) => done(code)); child.kill('SIGTERM'); }),
      });
    });
    child.once('exit', (code) => reject(new Error(`braid serve exited with ${code} before it was ready`)));
  });
}
