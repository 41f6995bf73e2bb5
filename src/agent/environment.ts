import type { Environment } from './protocol.js';

/** Azure marks its VMs with this chassis asset tag. */
const AZURE_ASSET_TAG = '7783-7084-3265-9085-8269-3286-77';

/** Where the machine runs, from its DMI (SMBIOS) strings as the cloud providers document them. */
export function environmentFromDmi(dmi: Record<string, string | undefined>): Environment {
  const field = (name: string) => (dmi[name] ?? '').trim();
  const any = (pattern: RegExp) => ['sys_vendor', 'product_name', 'bios_vendor', 'bios_version', 'board_vendor', 'product_version'].some((f) => pattern.test(field(f)));
  if (field('chassis_asset_tag') === AZURE_ASSET_TAG || (field('sys_vendor') === 'Microsoft Corporation' && field('product_name') === 'Virtual Machine')) {
    return 'AZURE';
  }
  if (any(/amazon/i) || /^ec2/i.test(field('product_uuid')) || /^ec2/i.test(field('product_serial'))) return 'AWS';
  if (any(/^Google/)) return 'GCP';
  return 'ON_PREMISES';
}
