/**
 * No import circles in src/: two modules that import each other (type imports count) are one idea
 * split in two files; the shared part belongs in a module of its own that both import.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

interface MadgeResult {
  obj(): Record<string, string[]>;
  circular(): string[][];
}
const madge = createRequire(import.meta.url)('madge') as (path: string, config: object) => Promise<MadgeResult>;
const SRC = fileURLToPath(new URL('../src/', import.meta.url));

describe('imports in src/', () => {
  it('form no circle', async () => {
    const graph = await madge(SRC, { fileExtensions: ['ts'], tsConfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });
    // Resolving .js specifiers to .ts files must have worked, or every list of circles is empty.
    const modules = Object.entries(graph.obj());
    expect(modules.length).toBeGreaterThan(50);
    expect(modules.filter(([, deps]) => deps.length > 0).length).toBeGreaterThan(40);
    expect(graph.circular().map((circle) => circle.join(' > '))).toEqual([]);
  }, 60_000);
});
