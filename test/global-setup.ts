/**
 * Once per `npm test`: the cluster tests need a real redis-server (Debian's package). On a fresh
 * machine where it is missing and we may install packages (root, apt-get), install it, so that the
 * README's one test command does all the set-up; otherwise the tests that need it fail, naming the fix.
 */
import { spawnSync } from 'node:child_process';

export default function setup(): void {
  if (!spawnSync('redis-server', ['--version']).error) return;
  if (process.getuid?.() !== 0 || spawnSync('apt-get', ['--version']).error) return;
  process.stdout.write('redis-server is missing: installing Debian\'s package for the cluster tests\n');
  const apt = (args: string[]) => spawnSync('apt-get', args, { stdio: 'inherit', timeout: 300_000, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  apt(['update']);
  apt(['install', '-y', '--no-install-recommends', 'redis-server']);
}
