// The client's address for rate limiting anonymous requests. IPv6 clients usually own a whole /64,
// so an IPv6 address is reduced to its /64 (otherwise one client could rotate through 2^64 buckets);
// IPv4-mapped IPv6 addresses count as IPv4. Behind proxies, TRUST_PROXY_HOPS says how many
// X-Forwarded-For entries (from the right) were added by proxies we trust.
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

/** The client's address: the socket's peer, or with trusted proxies the matching X-Forwarded-For entry. */
export function clientAddress(req: IncomingMessage, trustProxyHops: number): string {
  const peer = req.socket.remoteAddress ?? 'unknown';
  if (trustProxyHops <= 0) return peer;
  const header = req.headers['x-forwarded-for'];
  const list = (Array.isArray(header) ? header.join(',') : header ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  // The proxy next to us appended the peer it saw last; trustProxyHops proxies → the entry that many from the right.
  const candidate = list[list.length - trustProxyHops];
  return candidate && net.isIP(candidate.replace(/%.*$/, '')) ? candidate : peer;
}
