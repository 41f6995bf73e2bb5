/** Roles, lowest to highest: each one may do everything the ones before it may. */
export const ROLES = ['VIEWER', 'OPERATOR', 'ADMIN'] as const;
export type Role = (typeof ROLES)[number];

export function roleAllows(held: Role, required: Role): boolean {
  return ROLES.indexOf(held) >= ROLES.indexOf(required);
}

/** The lowest of several required roles: a field marked with several roles opens to the weakest. */
export function weakestRole(required: readonly Role[]): Role {
  return required.reduce<Role>((low, r) => (ROLES.indexOf(r) < ROLES.indexOf(low) ? r : low), 'ADMIN');
}
