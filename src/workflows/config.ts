/** Workflow ids are business ids: starting the same id twice finds the first run, never a second one. */
export const workflowIds = {
  selfCheck: (selfCheckId: string) => `self-check:${selfCheckId}`,
};
