import { connect, type Socket } from 'node:net';
import { PassThrough } from 'node:stream';
import { afterEach, expect } from 'vitest';
import { Lab, type LabOptions } from '../src/sim/lab.js';
import type { PbxKind } from '../src/sim/pbx-sim.js';

/** Polls until `check` returns (or resolves to) a value other than undefined/false (real events take a few ms). */
export async function waitFor<T>(check: () => T | undefined | false | Promise<T | undefined | false>, what: string, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Nothing of ours may be left in any PBX once every call has left the product. */
export async function expectNoLeftovers(lab: Lab, kinds: PbxKind[]): Promise<void> {
  await waitFor(() => lab.daemon.activeCalls === 0, 'every call to leave the product');
  for (const kind of kinds) {
    await waitFor(() => lab.pbx(kind).leftovers().length === 0 || undefined, `${kind} to hold nothing of ours`, 2000)
      .catch(() => undefined);
    expect(lab.pbx(kind).leftovers()).toEqual([]);
  }
}

/** A lab on one PBX per test: after each test, nothing may be left in the PBX, and the lab stops. */
export function labPerTest(kind: PbxKind): (options?: LabOptions) => Promise<Lab> {
  let current: Lab | undefined;
  afterEach(async () => {
    const lab = current;
    current = undefined;
    if (!lab) return;
    try {
      await expectNoLeftovers(lab, [kind]);
    } finally {
      await lab.stop();
    }
  });
  return async (options = {}) => (current = await Lab.start({ ...options, pbx: kind }));
}

/** A logger stream read back as text and as parsed JSON lines. */
export function captureLog(): { stream: PassThrough; text: () => string; lines: () => Record<string, any>[] } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => { text += d.toString(); });
  return { stream, text: () => text, lines: () => text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, any>) };
}

/** A raw TCP connection on loopback, once connected. */
export function openSocket(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Resolves when the server closes the socket; what it sent meanwhile. */
export function untilClosed(socket: Socket, what: string, timeoutMs = 5000): Promise<string> {
  let received = '';
  socket.on('data', (d: Buffer) => { received += d.toString(); });
  socket.on('error', () => {});
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), timeoutMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
  });
}
