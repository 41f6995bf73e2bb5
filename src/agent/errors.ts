/** The agent cannot go on: the server refused it for good, or it was started wrongly. The message says what to do. */
export class AgentRefused extends Error {
  override name = 'AgentRefused';
}
