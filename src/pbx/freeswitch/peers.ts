/**
 * Who may connect to the call socket: every connection there is taken for FreeSWITCH's `socket`
 * app, so only FreeSWITCH's own addresses are let in (freeswitch.allowed_peers, IPs and CIDRs).
 */
import { lookup } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';

const IPV4_MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

export class AllowedPeers {
  private readonly list = new BlockList();

  /** `entries` are IP addresses or CIDRs, as the config schema checked them. */
  constructor(readonly entries: readonly string[]) {
    for (const entry of entries) {
      const [address = '', prefix] = entry.split('/');
      const family = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.list.addAddress(address, family);
      else this.list.addSubnet(address, Number(prefix), family);
    }
  }

  allows(remoteAddress: string | undefined): boolean {
    if (remoteAddress === undefined) return false;
    // A listener on :: sees IPv4 peers as ::ffff:a.b.c.d.
    const address = IPV4_MAPPED.exec(remoteAddress)?.[1] ?? remoteAddress;
    const family = isIP(address);
    return family !== 0 && this.list.check(address, family === 6 ? 'ipv6' : 'ipv4');
  }
}

/**
 * allowed_peers, or by default the address(es) of the ESL host, resolved once at start: FreeSWITCH
 * connects from there. A loopback ESL host lets in both loopbacks (FreeSWITCH may pick either family).
 */
export async function allowedPeers(configured: readonly string[] | undefined, eslHost: string): Promise<AllowedPeers> {
  if (configured) return new AllowedPeers(configured);
  const addresses = isIP(eslHost) ? [eslHost] : (await lookup(eslHost, { all: true })).map((a) => a.address);
  const loopback = addresses.some((a) => a === '::1' || a.startsWith('127.'));
  return new AllowedPeers([...new Set([...addresses, ...(loopback ? ['127.0.0.1', '::1'] : [])])]);
}
