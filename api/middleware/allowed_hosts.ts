// Serve only the hosts in ALLOWED_HOSTS (api/allowed_hosts.ts): any other Host header gets 421
// Misdirected Request. Runs after health, metrics and the shutdown guard (probes and scrapers address
// the pod by its IP) and before CORS, whose same-origin exemption trusts the Host header.
import { hostAllowed } from '../allowed_hosts.ts';
import { sendError } from '../errors.ts';
import type { Middleware } from './compose.ts';

export function allowedHosts(hosts: string[]): Middleware {
  const allowed = new Set(hosts);
  return async (req, res, next) => {
    if (hostAllowed(req.headers.host, allowed)) return next();
    const shown = JSON.stringify((req.headers.host ?? '').slice(0, 200));
    sendError(req, res, 421, 'HOST_NOT_ALLOWED', `this server does not serve host ${shown}: it is not in ALLOWED_HOSTS`);
  };
}
