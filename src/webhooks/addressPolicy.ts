import { BlockList, isIP } from 'node:net';

/**
 * Which addresses a webhook may be delivered to. A webhook URL is chosen by an admin, but the
 * request leaves from inside the network fleetpatch runs in: without a rule, a URL could reach
 * PostgreSQL's neighbours, a cloud's metadata service (169.254.169.254) or the API's own port
 * (server-side request forgery). So every address that is not public is refused unless the
 * operator allows its network (FLEETPATCH_WEBHOOK_ALLOWED_NETWORKS, CIDRs). The check is made on
 * the address the connection actually uses (after DNS), so a name that resolves to a private
 * address, or changes its answer between two lookups, is refused too.
 */
const NOT_PUBLIC: Array<[string, number, 'ipv4' | 'ipv6']> = [
  ['0.0.0.0', 8, 'ipv4'], // "this" network
  ['10.0.0.0', 8, 'ipv4'], // private
  ['100.64.0.0', 10, 'ipv4'], // carrier-grade NAT
  ['127.0.0.0', 8, 'ipv4'], // loopback
  ['169.254.0.0', 16, 'ipv4'], // link-local, cloud metadata services
  ['172.16.0.0', 12, 'ipv4'], // private
  ['192.0.0.0', 24, 'ipv4'], // IETF protocol assignments
  ['192.168.0.0', 16, 'ipv4'], // private
  ['198.18.0.0', 15, 'ipv4'], // benchmarking
  ['224.0.0.0', 4, 'ipv4'], // multicast
  ['240.0.0.0', 4, 'ipv4'], // reserved, broadcast
  ['::', 128, 'ipv6'], // unspecified
  ['::1', 128, 'ipv6'], // loopback
  ['fc00::', 7, 'ipv6'], // unique local
  ['fe80::', 10, 'ipv6'], // link-local
  ['ff00::', 8, 'ipv6'], // multicast
];

export interface AddressPolicy {
  /** Null: the address may be used; else why not. */
  problem(address: string): string | null;
}

/** Parses "10.0.0.0/8, 127.0.0.1, ::1/128"; throws with the item that is not a network. */
export function parseNetworks(list: string): Array<{ address: string; prefix: number; family: 'ipv4' | 'ipv6' }> {
  return list
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item.length > 0)
    .map((item) => {
      const [address = '', prefixText] = item.split('/');
      const version = isIP(address);
      if (version === 0) throw new Error(`${JSON.stringify(item)} is not an IP address or network (e.g. 10.0.0.0/8, 127.0.0.1/32, fd00::/8)`);
      const max = version === 4 ? 32 : 128;
      const prefix = prefixText === undefined ? max : Number(prefixText);
      if (!Number.isInteger(prefix) || prefix < 0 || prefix > max) throw new Error(`${JSON.stringify(item)} has a prefix length outside 0 to ${max}`);
      return { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' };
    });
}

export function addressPolicy(allowedNetworks: ReadonlyArray<{ address: string; prefix: number; family: 'ipv4' | 'ipv6' }>): AddressPolicy {
  const notPublic = new BlockList();
  for (const [address, prefix, family] of NOT_PUBLIC) notPublic.addSubnet(address, prefix, family);
  const allowed = new BlockList();
  for (const n of allowedNetworks) allowed.addSubnet(n.address, n.prefix, n.family);
  return {
    problem(raw) {
      // An IPv4 address written as IPv6 (::ffff:10.0.0.1) is the IPv4 address.
      const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(raw);
      const address = mapped ? mapped[1]! : raw;
      const family = isIP(address) === 4 ? 'ipv4' : isIP(address) === 6 ? 'ipv6' : null;
      if (!family) return `${raw} is not an IP address`;
      if (allowed.check(address, family)) return null;
      if (notPublic.check(address, family)) {
        return `${address} is not a public address; webhooks are not delivered to private, loopback or link-local addresses unless FLEETPATCH_WEBHOOK_ALLOWED_NETWORKS allows its network`;
      }
      return null;
    },
  };
}
