import { GraphQLJSONObject } from 'graphql-scalars';
import { Field, Int, ObjectType, registerEnumType } from 'type-graphql';
import { STEP_FAILURE_ACTIONS, STEP_KINDS, STEP_PHASES, STEP_STATUSES, enumObject } from '../../domain/vocabulary.js';

export const StepPhase = enumObject(STEP_PHASES);
export type StepPhase = (typeof StepPhase)[keyof typeof StepPhase];
registerEnumType(StepPhase, {
  name: 'StepPhase',
  description: 'When a step runs on a machine.',
  valuesConfig: { PRE: { description: 'Before the installs (calls first, then scripts).' }, POST: { description: 'After the installs and the reboot (scripts first, then calls), even when installs failed.' } },
});

export const StepFailureAction = enumObject(STEP_FAILURE_ACTIONS);
export type StepFailureAction = (typeof StepFailureAction)[keyof typeof StepFailureAction];
registerEnumType(StepFailureAction, {
  name: 'StepFailureAction',
  description: 'What a failed step does.',
  valuesConfig: {
    CONTINUE: { description: 'Record the failure and go on.' },
    SKIP_INSTALLS: { description: "PRE only: install nothing on the machine; its updates are NOT_ATTEMPTED with the step's reason (the default for PRE)." },
    FAIL_MACHINE: { description: 'Install nothing more and fail the machine run (the default for POST).' },
    HALT_RUN: { description: "Fail the machine run and halt the run: no new machine starts; a ringed run halts at the ring's gate (resumeDeploymentRun goes on)." },
  },
});

export const StepKind = enumObject(STEP_KINDS);
export type StepKind = (typeof StepKind)[keyof typeof StepKind];
registerEnumType(StepKind, { name: 'StepKind', description: 'Who runs a step.', valuesConfig: { SCRIPT: { description: 'The agent, on the machine.' }, HTTP: { description: 'The worker: a control-plane call.' } } });

export const StepStatus = enumObject(STEP_STATUSES);
export type StepStatus = (typeof StepStatus)[keyof typeof StepStatus];
registerEnumType(StepStatus, {
  name: 'StepStatus',
  description: 'How a step went on a machine.',
  valuesConfig: { SUCCEEDED: { description: 'It ran and succeeded.' }, FAILED: { description: 'It failed (see message).' }, NOT_RUN: { description: 'It did not run (an earlier step stopped the phase, or the machine run ended first).' } },
});

@ObjectType({ description: 'A script the agent runs on the machine, as root.' })
export class ScriptStep {
  @Field(() => String, { nullable: true, description: 'The script itself (null: a file on the machine, path).' }) inline!: string | null;
  @Field(() => String, { nullable: true, description: 'An absolute path of a script already on the machine.' }) path!: string | null;
  @Field(() => String, { description: 'The program it is given to (default /bin/sh).' }) interpreter!: string;
  @Field(() => Int, { description: 'Seconds before it is stopped and fails.' }) timeoutSeconds!: number;
}

@ObjectType({ description: 'A header of a control-plane call: a literal value, or the name of a server-side secret (whose value is never shown).' })
export class HttpStepHeader {
  @Field(() => String, { description: 'The header name.' }) name!: string;
  @Field(() => String, { nullable: true, description: 'The literal value (null when it comes from a secret).' }) value!: string | null;
  @Field(() => String, { nullable: true, description: "The secret's name (FLEETPATCH_STEP_SECRET_<name> on the server)." }) secret!: string | null;
}

@ObjectType({ description: "A call the worker makes, with the run's and machine's context as its JSON body." })
export class HttpStep {
  @Field(() => String, { description: 'GET, POST, PUT, PATCH or DELETE.' }) method!: string;
  @Field(() => String, { description: 'An http or https URL.' }) url!: string;
  @Field(() => [HttpStepHeader], { description: 'Headers sent with it.' }) headers!: HttpStepHeader[];
  @Field(() => GraphQLJSONObject, { nullable: true, description: 'Sent as data beside the context.' }) body!: Record<string, unknown> | null;
  @Field(() => [Int], { description: 'Statuses that count as success; empty: any 2xx.' }) expectedStatus!: number[];
  @Field(() => Int, { description: 'Seconds per attempt.' }) timeoutSeconds!: number;
  @Field(() => Int, { description: 'Attempts after the first when it fails.' }) retries!: number;
}

@ObjectType({ description: 'A pre or post step of a deployment: exactly one of script and http.' })
export class DeploymentStep {
  @Field(() => String, { description: "The step's name." }) name!: string;
  @Field(() => StepPhase, { description: 'Before or after the installs.' }) phase!: StepPhase;
  @Field(() => StepFailureAction, { description: 'What its failure does.' }) onFailure!: StepFailureAction;
  @Field(() => ScriptStep, { nullable: true, description: 'A script the agent runs.' }) script!: ScriptStep | null;
  @Field(() => HttpStep, { nullable: true, description: 'A control-plane call.' }) http!: HttpStep | null;
}

@ObjectType({ description: 'How one step went on one machine.' })
export class StepResult {
  @Field(() => Int, { description: "The step's place in the deployment's steps (0-based)." }) index!: number;
  @Field(() => String, { description: "The step's name." }) name!: string;
  @Field(() => StepPhase, { description: 'Before or after the installs.' }) phase!: StepPhase;
  @Field(() => StepKind, { description: 'Script or call.' }) kind!: StepKind;
  @Field(() => StepFailureAction, { description: 'What its failure does.' }) onFailure!: StepFailureAction;
  @Field(() => StepStatus, { description: 'How it went.' }) status!: StepStatus;
  @Field(() => String, { nullable: true, description: 'Why it failed or did not run.' }) message!: string | null;
  @Field(() => Int, { nullable: true, description: "A script's exit code." }) exitCode!: number | null;
  @Field(() => Int, { nullable: true, description: "A call's last HTTP status." }) httpStatus!: number | null;
  @Field(() => Int, { description: 'Attempts made (calls retry; scripts run once).' }) attempts!: number;
  @Field(() => Date, { nullable: true, description: 'When it started.' }) startedAt!: Date | null;
  @Field(() => Date, { nullable: true, description: 'When it ended.' }) endedAt!: Date | null;
}
