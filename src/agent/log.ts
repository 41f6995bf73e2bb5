/** The agent's log: one JSON object per line on stderr (journald and `docker logs` read it as is). */
export type AgentLog = (level: 'debug' | 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export function createAgentLog(minimum: 'debug' | 'info' | 'warn' | 'error' = 'info'): AgentLog {
  const order = ['debug', 'info', 'warn', 'error'];
  return (level, msg, fields = {}) => {
    if (order.indexOf(level) < order.indexOf(minimum)) return;
    process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields })}\n`);
  };
}
