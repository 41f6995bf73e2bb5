import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import type { AgentUpgradeRow } from '../../db/agentUpgrades.js';
import type { MachineRow } from '../../db/machines.js';
import type { ApiContext } from '../context.js';
import { CreatedEnrollmentKey } from '../enrollment/enrollment.type.js';
import { Machine } from '../machines/machine.type.js';
import { PageArgs, pageWindow, toConnection } from '../relay.js';
import { AgentUpgradeService } from './agentUpgrade.service.js';
import {
  AgentRelease,
  AgentUpgrade,
  AgentUpgradeConnection,
  AgentUpgradeCounts,
  AgentUpgradeMachineConnection,
  AgentUpgradeMachineStatus,
  AgentVersionSummary,
  InstallCommands,
  UpgradeAgentsInput,
} from './agentUpgrade.type.js';

const service = (ctx: ApiContext) => new AgentUpgradeService(ctx.services);

@Resolver(() => AgentUpgrade)
export class AgentUpgradeResolver {
  @Authorized('VIEWER')
  @Query(() => AgentRelease, { description: 'The agent version this server ships, its executables and packages, and its release key.' })
  agentRelease(@Ctx() ctx: ApiContext) {
    return service(ctx).agentRelease();
  }

  @Authorized('VIEWER')
  @Query(() => AgentVersionSummary, { description: 'How many machines run each agent version, and how many are outdated.' })
  agentVersions(@Ctx() ctx: ApiContext) {
    return service(ctx).versions();
  }

  @Authorized('VIEWER')
  @Query(() => AgentUpgradeConnection, { description: 'Agent upgrades, newest first.' })
  async agentUpgrades(@Ctx() ctx: ApiContext, @Args(() => PageArgs) page: PageArgs) {
    const window = pageWindow(page);
    const { rows, totalCount } = await service(ctx).list(window);
    return toConnection(rows, window.offset, totalCount);
  }

  @Authorized('VIEWER')
  @Query(() => AgentUpgrade, { nullable: true, description: 'One agent upgrade by id (null: no such upgrade).' })
  agentUpgrade(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The upgrade.' }) id: string) {
    return service(ctx).get(id);
  }

  @Authorized('OPERATOR')
  @Mutation(() => AgentUpgrade, {
    description:
      "Upgrades agents to the version the server ships, as a Temporal workflow: each agent downloads the new executable, checks its sha256 and signature against the release key it pinned, swaps it in and restarts, and rolls back by itself if the new one does not check in. Agents upgrade only between install jobs.",
  })
  upgradeAgents(@Ctx() ctx: ApiContext, @Arg('input', () => UpgradeAgentsInput, { description: 'Which agents, and how fast.' }) input: UpgradeAgentsInput) {
    return service(ctx).upgrade(input, ctx.principal?.name ?? null);
  }

  @Authorized('OPERATOR')
  @Mutation(() => AgentUpgrade, { description: 'Cancels an upgrade: no machine starts any more; one being upgraded may still finish.' })
  async cancelAgentUpgrade(@Ctx() ctx: ApiContext, @Arg('id', () => ID, { description: 'The upgrade to cancel.' }) id: string) {
    return service(ctx).cancel(id);
  }

  @FieldResolver(() => AgentUpgradeCounts, { description: 'Its machines by status.' })
  counts(@Root() upgrade: AgentUpgradeRow, @Ctx() ctx: ApiContext) {
    return service(ctx).counts(upgrade.id);
  }

  @FieldResolver(() => AgentUpgradeMachineConnection, { description: 'Its machines in the order they are taken, with how each ended.' })
  async machines(
    @Root() upgrade: AgentUpgradeRow,
    @Ctx() ctx: ApiContext,
    @Args(() => PageArgs) page: PageArgs,
    @Arg('status', () => [AgentUpgradeMachineStatus], { nullable: true, description: 'Only machines in these statuses (absent: every one).' }) status?: AgentUpgradeMachineStatus[],
  ) {
    const window = pageWindow(page);
    const { rows, totalCount } = await service(ctx).machines(upgrade.id, { ...window, status: status ?? undefined });
    return toConnection(rows, window.offset, totalCount);
  }
}

@Resolver(() => Machine)
export class MachineAgentVersionResolver {
  @FieldResolver(() => Boolean, { nullable: true, description: 'Its agent is older than the version the server ships (see agentVersions); null when its version is unknown.' })
  outdated(@Root() machine: MachineRow, @Ctx() ctx: ApiContext) {
    return service(ctx).outdated(machine.agentVersion);
  }
}

@Resolver(() => CreatedEnrollmentKey)
export class InstallCommandsResolver {
  @FieldResolver(() => InstallCommands, {
    nullable: true,
    description: 'The one line per platform that installs the agent and enrolls a machine with this key. Null when the server does not know its address (set FLEETPATCH_PUBLIC_URL).',
  })
  installCommands(@Root() created: { secret: string }, @Ctx() ctx: ApiContext) {
    return service(ctx).installCommands(created.secret, ctx.origin);
  }
}
