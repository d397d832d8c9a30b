/**
 * Twin's callbacks on disk, one JSON file each, written and fsync'd before Twin gets its 200:
 *
 *   pending/<key>.json    received, not yet delivered to every forward URL (with each URL's attempts)
 *   delivered/<key>.json  delivered everywhere; kept for de-duplication while Twin may still retry
 *   failed/<key>.json     given up after callbacks.retry_for_h; for a person to look at
 *   malformed/<time>.txt  bodies that were not a JSON object, or nested too deep (answered 400), kept for inspection
 *
 * The key is a digest of the body's canonical JSON, so a callback Twin sends again (it retries
 * until it gets a 200, for up to 24 h) is recognised as the same one.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, unlink } from 'node:fs/promises';
import { join } from 'node:path';

export interface Delivery {
  attempts: number;
  /** Epoch ms of the next attempt. */
  nextAt: number;
  deliveredAt?: number;
  lastError?: string;
}

export interface StoredCallback {
  key: string;
  receivedAt: number;
  /** Twin's event type when the body names one (CALL_ENDED, CALL_REDIRECTED, …); unknown types are kept too. */
  type: string;
  body: Record<string, unknown>;
  deliveries: Record<string, Delivery>;
}

type Folder = 'pending' | 'delivered' | 'failed' | 'malformed';
const FOLDERS: Folder[] = ['pending', 'delivered', 'failed', 'malformed'];

export class CallbackStore {
  /** Keys of every callback on disk (any folder), for de-duplication. */
  private readonly known = new Map<string, number>();
  /** Writes in progress: a duplicate that arrives meanwhile waits for the first copy's fsync. */
  private readonly writing = new Map<string, Promise<void>>();

  constructor(readonly dir: string) {}

  /** Creates the folders and reads what is on disk; returns the callbacks still to deliver. */
  async open(): Promise<StoredCallback[]> {
    for (const folder of FOLDERS) {
      await mkdir(join(this.dir, folder), { recursive: true, mode: 0o700 });
      await removeTemporaryFiles(join(this.dir, folder));
    }
    const pending: StoredCallback[] = [];
    // Finished ones first: a crash inside finish() leaves a stale copy in pending/ too.
    for (const folder of ['delivered', 'failed', 'pending'] as const) {
      for (const name of await readdir(join(this.dir, folder))) {
        if (!name.endsWith('.json')) continue;
        const stored = await this.read(folder, name);
        if (!stored) continue;
        if (folder === 'pending' && this.known.has(stored.key)) {
          await unlink(join(this.dir, folder, name)).catch(() => {});
          continue;
        }
        this.known.set(stored.key, stored.receivedAt);
        if (folder === 'pending') pending.push(stored);
      }
    }
    return pending;
  }

  /**
   * Stores a callback durably. 'duplicate' when the same body was stored before (or is being
   * stored now, in which case this waits until it is on disk).
   */
  async add(body: Record<string, unknown>, forwardTo: string[], now: number): Promise<{ result: 'stored' | 'duplicate'; callback: StoredCallback }> {
    const key = callbackKey(body);
    const callback: StoredCallback = {
      key, receivedAt: now, type: typeof body.type === 'string' ? body.type : typeof body.event === 'string' ? body.event : 'unknown', body,
      deliveries: Object.fromEntries(forwardTo.map((url) => [url, { attempts: 0, nextAt: now }])),
    };
    const inFlight = this.writing.get(key);
    if (inFlight) {
      await inFlight;
      return { result: 'duplicate', callback };
    }
    if (this.known.has(key)) return { result: 'duplicate', callback };
    const write = this.write('pending', callback);
    this.writing.set(key, write);
    try {
      await write;
      this.known.set(key, now);
    } finally {
      this.writing.delete(key);
    }
    return { result: 'stored', callback };
  }

  /** Saves the delivery state of a pending callback (after each attempt). */
  update(callback: StoredCallback): Promise<void> {
    return this.write('pending', callback);
  }

  /** Moves a pending callback to delivered/ or failed/. */
  async finish(callback: StoredCallback, folder: 'delivered' | 'failed'): Promise<void> {
    await this.write(folder, callback);
    await unlink(this.path('pending', callback.key)).catch(() => {});
    await syncDir(join(this.dir, 'pending'));
  }

  /** Keeps a body that could not be read, for a person to look at. Returns its file name. */
  async keepMalformed(raw: Buffer, now: number): Promise<string> {
    const name = `${new Date(now).toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}.txt`;
    await writeDurably(join(this.dir, 'malformed'), name, raw);
    return name;
  }

  /** Forgets delivered callbacks older than `maxAgeMs` (Twin no longer retries them). */
  async prune(now: number, maxAgeMs: number): Promise<number> {
    let removed = 0;
    for (const name of await readdir(join(this.dir, 'delivered'))) {
      const key = name.replace(/\.json$/, '');
      const receivedAt = this.known.get(key);
      if (receivedAt === undefined || now - receivedAt <= maxAgeMs) continue;
      await unlink(join(this.dir, 'delivered', name)).catch(() => {});
      this.known.delete(key);
      removed += 1;
    }
    return removed;
  }

  private path(folder: Folder, key: string): string {
    return join(this.dir, folder, `${key}.json`);
  }

  private write(folder: Folder, callback: StoredCallback): Promise<void> {
    return writeDurably(join(this.dir, folder), `${callback.key}.json`, Buffer.from(JSON.stringify(callback)));
  }

  private async read(folder: Folder, name: string): Promise<StoredCallback | undefined> {
    try {
      const value = JSON.parse(await readFile(join(this.dir, folder, name), 'utf8')) as StoredCallback;
      return typeof value.key === 'string' && value.body && value.deliveries ? value : undefined;
    } catch {
      return undefined; // unreadable: leave the file where it is for a person to look at
    }
  }
}

/** A .tmp left by a crash mid-write was never answered 200 (or its callback is on disk under its own name). */
async function removeTemporaryFiles(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    if (name.endsWith('.tmp')) await unlink(join(dir, name)).catch(() => {});
  }
}

/** Same content, same key: the digest of the body with its object keys sorted. */
export function callbackKey(body: unknown): string {
  return createHash('sha256').update(canonicalJson(body)).digest('hex').slice(0, 32);
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/**
 * Write to a temporary name, fsync, rename over the final name, fsync the folder: all or nothing.
 * A failed write takes its temporary file with it (a full disk must not fill up with them).
 */
async function writeDurably(dir: string, name: string, data: Buffer): Promise<void> {
  const tmp = join(dir, `.${name}.${randomUUID().slice(0, 8)}.tmp`);
  try {
    const file = await open(tmp, 'w', 0o600);
    try {
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, join(dir, name));
  } catch (err) {
    await unlink(tmp).catch(() => {});
    throw err;
  }
  await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
