import { ensureTemporalCli } from '../devstack/temporalCli.js';

export async function temporalCliCommand(): Promise<void> {
  const cli = await ensureTemporalCli((line) => console.error(line));
  console.log(cli);
}
