// The client's address for rate limiting anonymous requests. IPv6 clients usually own a whole /64,
// so an IPv6 address is reduced to its /64 (otherwise one client could rotate through 2^64 buckets);
// IPv4-mapped IPv6 addresses count as IPv4. Behind proxies, TRUST_PROXY_HOPS says how many
// X-Forwarded-For entries (from the right) were added by proxies we trust, and TRUSTED_PROXIES which
// addresses those proxies have: X-Forwarded-For is read only from a peer in that list (anyone else
// could write any address there and get a fresh bucket per request), and each hop it names on the way
// must be in the list too.
import net from 'node:net';
import type { IncomingMessage } from 'node:http';

/** Expands an IPv6 address to its 8 groups (numbers); null when it is not IPv6. */
function ipv6Groups(address: string): number[] | null {
  let a = address.replace(/%.*$/, ''); // zone id
  if (net.isIPv6(a) === false) return null;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) {
    const o = v4[1].split('.').map(Number);
    a = a.slice(0, -v4[1].length) + `${((o[0] << 8) | o[1]).toString(16)}:${((o[2] << 8) | o[3]).toString(16)}`;
  }
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const zeros = tail === undefined ? [] : new Array(8 - h.length - t.length).fill('0');
  const groups = [...h, ...zeros, ...t].map((g) => parseInt(g, 16));
  return groups.length === 8 && groups.every((g) => g >= 0 && g <= 0xffff) ? groups : null;
}

/** The rate-limit key of an address: IPv4 as is, IPv6 as its /64 network ("2001:db8:1:2::/64"). */
export function addressKey(address: string): string {
  const trimmed = address.trim();
  if (net.isIPv4(trimmed)) return trimmed;
  const g = ipv6Groups(trimmed);
  if (!g) return trimmed.slice(0, 64) || 'unknown';
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) {
    return `${g[6] >> 8}.${g[6] & 0xff}.${g[7] >> 8}.${g[7] & 0xff}`; // ::ffff:a.b.c.d
  }
  return `${g.slice(0, 4).map((x) => x.toString(16)).join(':')}::/64`;
}

/** Why `entry` is not an address or CIDR (10.0.0.0/8, 10.1.2.3, fd00::/8), or null when it is one. */
export function cidrProblem(entry: string): string | null {
  return parseCidr(entry) ? null : 'is not an IP address or CIDR (e.g. 10.0.0.0/8, 192.0.2.7, fd00::/8)';
}

function parseCidr(entry: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const m = /^([^/\s]+)(?:\/(\d{1,3}))?$/.exec(entry.trim());
  if (!m) return null;
  const version = net.isIP(m[1]);
  if (version === 0) return null;
  const max = version === 4 ? 32 : 128;
  const prefix = m[2] === undefined ? max : Number(m[2]);
  if (prefix > max) return null;
  return { address: m[1], prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
}

/** Who may tell us the client's address: how many proxies stand in front, and their addresses. */
export type ProxyTrust = { hops: number; proxies: net.BlockList };

/** The proxy trust of TRUST_PROXY_HOPS and TRUSTED_PROXIES (entries checked by cidrProblem at startup). */
export function proxyTrust(hops: number, trustedProxies: string[]): ProxyTrust {
  const proxies = new net.BlockList();
  for (const entry of trustedProxies) {
    const c = parseCidr(entry);
    if (c) proxies.addSubnet(c.address, c.prefix, c.family);
  }
  return { hops, proxies };
}

function trusted(trust: ProxyTrust, address: string): boolean {
  const a = address.replace(/%.*$/, '');
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  if (v4) return trust.proxies.check(v4[1], 'ipv4');
  const version = net.isIP(a);
  return version !== 0 && trust.proxies.check(a, version === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The client's address: the socket's peer; with trusted proxies, the X-Forwarded-For entry `hops` from
 * the right, walked one hop at a time: the peer and each proxy entry passed on the way must be in
 * TRUSTED_PROXIES, else the first untrusted address is the client.
 */
export function clientAddress(req: IncomingMessage, trust: ProxyTrust): string {
  let address = req.socket.remoteAddress ?? 'unknown';
  if (trust.hops <= 0) return address;
  const header = req.headers['x-forwarded-for'];
  const list = (Array.isArray(header) ? header.join(',') : header ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  // Each trusted proxy appended the peer it saw; the proxy next to us is the socket's peer.
  for (let hop = 1; hop <= trust.hops; hop++) {
    if (!trusted(trust, address)) return address;
    const previous = list[list.length - hop];
    if (!previous || !net.isIP(previous.replace(/%.*$/, ''))) return address;
    address = previous;
  }
  return address;
}
