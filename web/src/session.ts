import { createContext, useContext } from 'react';
import type { Session } from './client';

/** The signed-in session, for pages that offer what only some roles may do. */
export const SessionContext = createContext<Session | null>(null);

const RANK: Record<string, number> = { VIEWER: 1, OPERATOR: 2, ADMIN: 3 };

/**
 * Whether the session's role may do what needs `role` (an ADMIN may do what an OPERATOR may). The
 * server checks again: this only keeps buttons that would be refused off the page.
 */
export function useRoleAllows(role: 'OPERATOR' | 'ADMIN'): boolean {
  const session = useContext(SessionContext);
  return (RANK[session?.role ?? ''] ?? 0) >= RANK[role]!;
}
