/** What `twin-connector check` prints: one line per check, then what cannot be checked, then the verdict. */
import type { BotEndpointVerdict } from '../pbx/bot-endpoint.js';

export interface Output {
  write(text: string): unknown;
}

export class Report {
  failures = 0;
  private readonly uncheckable: string[] = [];

  constructor(private readonly out: Output) {}

  ok(line: string): void {
    this.out.write(`ok    ${line}\n`);
  }

  fail(line: string): void {
    this.failures += 1;
    this.out.write(`FAIL  ${line}\n`);
  }

  warn(line: string): void {
    this.out.write(`WARN  ${line}\n`);
  }

  /** Something that matters but that neither ARI nor ESL can tell: listed at the end. */
  cannotCheck(line: string): void {
    this.uncheckable.push(line);
  }

  /** Prints the list of what could not be checked and the verdict; the exit code. */
  finish(): number {
    if (this.uncheckable.length > 0) {
      this.out.write('cannot be checked from here (check these yourself):\n');
      for (const line of this.uncheckable) this.out.write(`  -   ${line}\n`);
    }
    this.out.write(this.failures === 0 ? 'all checks passed\n' : `${this.failures} check(s) failed\n`);
    return this.failures === 0 ? 0 : 1;
  }

  /** The bot endpoint's line: exists, is missing (with how to add it), or cannot be checked. */
  botEndpoint(pbx: string, field: string, verdict: BotEndpointVerdict, fix: string): void {
    if (verdict.kind === 'unchecked') return this.cannotCheck(`${pbx}: ${verdict.why}`);
    if (verdict.kind === 'missing') return this.fail(`${verdict.reason}: no call can reach the bot; ${fix}`);
    this.ok(`${pbx} has the bot endpoint ${verdict.what} (${field})${verdict.state ? `, state ${verdict.state}` : ''}`);
  }
}
