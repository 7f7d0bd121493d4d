import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';

export interface DestinationPolicy {
  allowLoopback: boolean;
  allowPrivate: boolean;
}

/** A back-channel destination this provider refuses to call (SSRF protection). */
export class RefusedDestination extends Error {
  readonly code = 'ERR_DESTINATION_REFUSED';
}

const PRIVATE_RANGES = new Set(['private', 'linkLocal', 'uniqueLocal', 'carrierGradeNat']);

/** Whether an IP address may be called under the policy; the reason when it may not. */
export function refusalFor(address: string, policy: DestinationPolicy): string | undefined {
  let parsed: ipaddr.IPv4 | ipaddr.IPv6;
  try {
    // IPv4-mapped IPv6 (::ffff:127.0.0.1) is judged as the IPv4 address it is.
    parsed = ipaddr.process(address);
  } catch {
    return `${address} is not an IP address`;
  }
  const range = parsed.range();
  if (range === 'unicast') return undefined;
  if (range === 'loopback') return policy.allowLoopback ? undefined : `${address} is a loopback address`;
  if (PRIVATE_RANGES.has(range)) return policy.allowPrivate ? undefined : `${address} is a private address`;
  return `${address} is a special-use address (${range})`;
}

/**
 * A DNS lookup for outgoing connections that refuses hosts resolving to addresses the policy
 * forbids. The connection uses the address checked here, so a second resolution cannot swap it.
 */
export function guardedLookup(policy: DestinationPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) {
        callback(error, '', 0);
        return;
      }
      // A host with any forbidden address is refused as a whole: connection fallback could reach it.
      const refusal = addresses.map((entry) => refusalFor(entry.address, policy)).find(Boolean);
      if (refusal || addresses.length === 0) {
        callback(new RefusedDestination(`${hostname} resolves to a refused address: ${refusal ?? 'no address'}`), '', 0);
        return;
      }
      if (options.all) {
        (callback as unknown as (error: null, addresses: LookupAddress[]) => void)(null, addresses);
      } else {
        const first = addresses[0]!;
        callback(null, first.address, first.family);
      }
    });
  };
}

/** Checks a URL whose host is an IP literal (no DNS lookup happens for those). */
export function checkLiteralHost(url: URL, policy: DestinationPolicy): void {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) === 0) return;
  const refusal = refusalFor(host, policy);
  if (refusal) throw new RefusedDestination(refusal);
}
