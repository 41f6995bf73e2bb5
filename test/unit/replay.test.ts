import fs from 'node:fs';
import { Worker, type WorkflowBundleOption } from '@temporalio/worker';
import { beforeAll, describe, expect, it } from 'vitest';
import { workflowsPath } from '../../src/temporal/worker.js';
import { cachedWorkflowBundle } from '../../src/temporal/workflowBundle.js';

/**
 * Replays histories recorded from real runs (test/history_files/, recorded by the deployment
 * end-to-end test with RECORD_HISTORY=test/history_files) against today's workflow code: a change
 * that would break runs already in flight fails here, with Temporal's non-determinism error.
 */
describe('workflow code stays compatible with recorded runs', () => {
  let workflowBundle: WorkflowBundleOption;
  const quiet = { log: () => undefined, trace: () => undefined, debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

  // The bundle the workers run (made once for this code, then loaded from the cache).
  beforeAll(async () => {
    workflowBundle = await cachedWorkflowBundle(workflowsPath, quiet);
  });

  it('is the same bundle at the next start of a worker of this code, loaded from the cache instead of made again', async () => {
    const again = await cachedWorkflowBundle(workflowsPath, quiet);
    expect(again).toHaveProperty('codePath');
    const code = (bundle: WorkflowBundleOption) => ('code' in bundle ? bundle.code : fs.readFileSync((bundle as { codePath: string }).codePath, 'utf8'));
    expect(code(again)).toBe(code(workflowBundle));
  });

  const recorded: Array<[string, string]> = [
    ['deploymentRun.json', 'a run with installs, a failed update, a reboot and the signal that ended it; recorded before rings existed'],
    ['machineRun.json', 'its machine run'],
    // Recorded by test/integration/deploymentRings.test.ts with RECORD_HISTORY=test/history_files.
    ['deploymentRunRings.json', 'three rings: a soak timer, an approval signal received by a restarted worker, the frozen set'],
    ['deploymentRunHalted.json', 'two rings: a failed gate halting the run, the resume signal'],
    // Recorded by test/integration/deploymentSteps.test.ts with RECORD_HISTORY=test/history_files.
    ['deploymentRunSteps.json', "two rings with a POST health check: the canary's step halting the run at its gate, the resume signal"],
    ['machineRunSteps.json', 'a machine run with steps: a PRE call retried, the install job, a POST script job, POST calls (one timed out)'],
    // Recorded by test/integration/complianceHistory.test.ts with RECORD_HISTORY=test/history_files.
    ['complianceSnapshot.json', 'the daily snapshot as its schedule started it; recorded before retention existed, so it replays past the patch without pruning'],
    ['complianceSnapshotRetention.json', 'the daily snapshot, then the days older than the retention deleted'],
    // Recorded by test/integration/batchedRun.test.ts with RECORD_HISTORY=test/history_files.
    ['deploymentRunBatched.json', "a batched run's first execution: the patch marker, the run begun without its machines, an advance, continue-as-new"],
    ['deploymentRunBatchedContinued.json', 'its last execution: continued from the state the one before carried, advances, the run finished'],
    ['deploymentRunPagedPlanning.json', "a batched run's first execution with paged planning: both patch markers, the planning heartbeating page by page, an advance, continue-as-new"],
    // Recorded by test/integration/deploymentStepsPaged.test.ts with RECORD_HISTORY=test/history_files.
    ['deploymentRunPagedSteps.json', "a run with steps, its first execution: the patch markers, the planning, a page of machines' children (PRE and POST calls, a POST script), continue-as-new"],
    ['deploymentRunPagedStepsContinued.json', 'its second execution: continued from the state the first carried, the next page of children, continue-as-new'],
    ['machineRunStepsCanceled.json', 'a machine run with a POST step canceled while its agent held the job: the POST step recorded as not run, the machine run ended CANCELED'],
    // Recorded by test/integration/deploymentSteps.test.ts with RECORD_HISTORY=test/history_files.
    ['deploymentRunBatchedSteps.json', "a run whose steps are all calls, batched: the patch markers, advances making a POST health check's calls, the canary's halt at its gate, the resume signal, the next ring"],
    // Recorded by test/integration/deploymentSteps.test.ts (its run of PRE scripts only) before and after such runs were batched.
    ['deploymentRunPreScriptsChildren.json', 'a run whose only steps are PRE scripts, begun before such runs were batched: a child workflow per machine (one agent older than steps), as it ran'],
    ['deploymentRunBatchedPreScripts.json', 'the same run batched: the patch markers, advances handing out jobs with the PRE scripts and recording their results'],
    // Recorded by test/integration/deploymentSteps.test.ts (its run with a PRE call, a POST script and POST calls) before and after such runs were batched.
    ['deploymentRunPostScriptsChildren.json', "a run with POST scripts begun before they were batched (its answer says `postScripts`, no marker): a child workflow per machine, as it ran"],
    ['deploymentRunBatchedPostScripts.json', "a run with POST scripts, batched: the patch markers, advances handing out the install job, then the POST scripts' job, recording their results, then the POST calls"],
  ];
  for (const [file, what] of recorded) {
    it(`replays ${file} (${what})`, async () => {
      const history: unknown = JSON.parse(fs.readFileSync(new URL(`../history_files/${file}`, import.meta.url), 'utf8'));
      await expect(Worker.runReplayHistory({ workflowBundle }, history)).resolves.toBeUndefined();
    });
  }

  it('notices a change that would break a run in flight', async () => {
    const history = JSON.parse(fs.readFileSync(new URL('../history_files/machineRun.json', import.meta.url), 'utf8')) as { events: Array<{ activityTaskScheduledEventAttributes?: { activityType?: { name?: string } } }> };
    // The same history, as if the code had called another activity first: replay must refuse it.
    const scheduled = history.events.find((e) => e.activityTaskScheduledEventAttributes)!;
    scheduled.activityTaskScheduledEventAttributes!.activityType!.name = 'somethingElse';
    await expect(Worker.runReplayHistory({ workflowBundle }, history)).rejects.toThrow(/[Nn]ondetermin/);
  });
});
