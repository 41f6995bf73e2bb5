import { GraphQLJSONObject } from 'graphql-scalars';
import { Field, InputType, Int } from 'type-graphql';
import { StepFailureAction, StepPhase } from './step.type.js';

@InputType({ description: 'A script the agent runs on the machine: exactly one of inline and path.' })
export class ScriptStepInput {
  @Field(() => String, { nullable: true, description: 'The script itself, at most 64 KiB.' }) inline?: string | null;
  @Field(() => String, { nullable: true, description: 'An absolute path of a script already on the machine.' }) path?: string | null;
  @Field(() => String, { nullable: true, description: 'The program it is given to: a name or path without arguments (default /bin/sh).' }) interpreter?: string | null;
  @Field(() => Int, { nullable: true, description: 'Seconds before it is stopped and fails, at most the window (default 300).' }) timeoutSeconds?: number | null;
}

@InputType({ description: 'A header: exactly one of value and secret.' })
export class HttpStepHeaderInput {
  @Field(() => String, { description: 'The header name.' }) name!: string;
  @Field(() => String, { nullable: true, description: 'A literal value (stored and shown).' }) value?: string | null;
  @Field(() => String, { nullable: true, description: 'The name of a server-side secret (FLEETPATCH_STEP_SECRET_<name>); its value is never stored or shown.' }) secret?: string | null;
}

@InputType({ description: "A control-plane call the worker makes, with the run's and machine's context as its JSON body." })
export class HttpStepInput {
  @Field(() => String, { nullable: true, description: 'GET, POST (default), PUT, PATCH or DELETE.' }) method?: string | null;
  @Field(() => String, { description: 'An http or https URL.' }) url!: string;
  @Field(() => [HttpStepHeaderInput], { nullable: true, description: 'Headers to send.' }) headers?: HttpStepHeaderInput[] | null;
  @Field(() => GraphQLJSONObject, { nullable: true, description: 'Sent as data beside the context (at most 16 KiB).' }) body?: Record<string, unknown> | null;
  @Field(() => [Int], { nullable: true, description: 'Statuses that count as success (default: any 2xx).' }) expectedStatus?: number[] | null;
  @Field(() => Int, { nullable: true, description: 'Seconds per attempt, at most 300 and the window (default 30).' }) timeoutSeconds?: number | null;
  @Field(() => Int, { nullable: true, description: 'Attempts after the first when it fails, 0 to 10 (default 0).' }) retries?: number | null;
}

@InputType({ description: 'A pre or post step: exactly one of script and http.' })
export class DeploymentStepInput {
  @Field(() => String, { nullable: true, description: 'Default: "Step N".' }) name?: string | null;
  @Field(() => StepPhase, { description: 'Before or after the installs.' }) phase!: StepPhase;
  @Field(() => StepFailureAction, { nullable: true, description: 'What its failure does (default: SKIP_INSTALLS for PRE, FAIL_MACHINE for POST).' }) onFailure?: StepFailureAction | null;
  @Field(() => ScriptStepInput, { nullable: true, description: 'A script the agent runs.' }) script?: ScriptStepInput | null;
  @Field(() => HttpStepInput, { nullable: true, description: 'A control-plane call.' }) http?: HttpStepInput | null;
}
