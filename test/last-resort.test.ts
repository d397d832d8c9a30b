/**
 * The daemon's crash policy (src/last-resort.ts), in a real child process: an unhandled rejection is
 * logged and the process goes on; an uncaught exception is logged as fatal and the process exits 1
 * for systemd to restart it. No credential reaches the log line.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/** Runs `body` after installing the handlers; resolves with the exit code and the log lines. */
function runWithHandlers(body: string): Promise<{ code: number | null; lines: Record<string, any>[] }> {
  const dir = mkdtempSync(join(tmpdir(), 'twin-last-resort-'));
  const script = join(dir, 'script.ts');
  writeFileSync(script, [
    `import { createLogger } from ${JSON.stringify(resolve('src/log.ts'))};`,
    `import { installLastResortHandlers } from ${JSON.stringify(resolve('src/last-resort.ts'))};`,
    'installLastResortHandlers(createLogger());',
    body,
  ].join('\n'));
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
  return new Promise((done) => child.on('exit', (code) => done({
    code, lines: out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, any>),
  })));
}

describe('crash policy', () => {
  it('logs an unhandled rejection and keeps running', async () => {
    const { code, lines } = await runWithHandlers([
      "void Promise.reject(new Error('lost promise'));",
      "setTimeout(() => console.log(JSON.stringify({ msg: 'still serving' })), 50);",
    ].join('\n'));
    expect(code).toBe(0);
    expect(lines.map((l) => l.msg)).toEqual(['unhandled promise rejection (a bug): logged, still serving', 'still serving']);
    expect(lines[0]).toMatchObject({ level: 50, error: { type: 'Error', message: 'lost promise' } });
  });

  it('logs an uncaught exception as fatal, without credentials, and exits 1', async () => {
    const { code, lines } = await runWithHandlers([
      "setTimeout(() => { throw new Error('ws://ari:8088/ari/events?app=twin&api_key=asterisk:s3cret failed, http://u:pw@host/'); }, 10);",
      "setTimeout(() => console.log(JSON.stringify({ msg: 'should not run' })), 200);",
    ].join('\n'));
    expect(code).toBe(1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ level: 60, msg: 'uncaught exception (a bug): exiting with code 1 to be restarted with a clean state' });
    expect(JSON.stringify(lines[0])).not.toMatch(/s3cret|u:pw/);
    expect(lines[0]!.error.message).toBe('ws://ari:8088/ari/events?app=twin&api_key=[redacted] failed, http://[redacted]@host/');
  });
});
