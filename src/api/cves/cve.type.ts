import { Field, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import { CVE_SOURCES, enumObject } from '../../domain/vocabulary.js';
import { CVE_FEED_FORMATS } from '../../fleet/osv.js';
import { ConnectionType } from '../relay.js';
import { Classification, Severity } from '../machines/machine.enums.js';
import { Machine } from '../machines/machine.type.js';

export const CveSource = enumObject(CVE_SOURCES);
export type CveSource = (typeof CveSource)[keyof typeof CveSource];
registerEnumType(CveSource, {
  name: 'CveSource',
  description: 'Who says that an update fixes the CVE.',
  valuesConfig: {
    ADVISORY: { description: "The update's own advisory names it (dnf/yum updateinfo, zypper patch, Windows Update)." },
    DEBIAN_TRACKER: { description: 'The imported Debian security tracker lists it fixed at or below the version the update installs (apt on Debian).' },
    OSV: { description: "Imported OSV records (Ubuntu's, Debian's) list it fixed at or below the version the update installs, for the machine's release (apt on Ubuntu and Debian)." },
  },
});

/** The formats importCveTracker reads. */
export const CveFeedFormat = enumObject(CVE_FEED_FORMATS);
export type CveFeedFormat = (typeof CveFeedFormat)[keyof typeof CveFeedFormat];
registerEnumType(CveFeedFormat, {
  name: 'CveFeedFormat',
  description: 'The format of an imported CVE document.',
  valuesConfig: {
    DEBIAN_TRACKER: { description: "The Debian security tracker's JSON (https://security-tracker.debian.org/tracker/data/json)." },
    OSV: { description: "OSV records (https://ossf.github.io/osv-schema/): one record, a JSON list of them, or a zip of record files (osv.dev's Ubuntu/all.zip, Debian/all.zip). Ubuntu's and Debian's releases are read; other ecosystems are left out." },
  },
});

@ObjectType({ description: 'The pending update that would fix a CVE on a machine.' })
export class CveFixingUpdate {
  @Field(() => String, { description: 'The package or KB name.' })
  name!: string;

  @Field(() => String, { nullable: true, description: 'The version installed now (null: the update pulls the package in new).' })
  installedVersion!: string | null;

  @Field(() => String, { description: 'The version the update installs.' })
  availableVersion!: string;

  @Field(() => Classification, { description: "The update's classification." })
  classification!: Classification;
}

@ObjectType({ description: 'The soonest scheduled run of a deployment that would install the fixing update on the machine.' })
export class ScheduledCveFix {
  @Field(() => ID, { description: 'The deployment.' })
  deploymentId!: string;

  @Field(() => String, { description: "The deployment's name." })
  deploymentName!: string;

  @Field(() => Date, { description: 'When its next run starts.' })
  nextRunAt!: Date;
}

@ObjectType({ description: 'One machine that misses an update fixing the CVE.' })
export class CveExposure {
  @Field(() => Machine, { description: 'The machine.' })
  machine!: Machine;

  @Field(() => CveFixingUpdate, { description: 'The pending update that fixes it (the most severe one when several do).' })
  update!: CveFixingUpdate;

  @Field(() => CveSource, { description: 'Who says that the update fixes it.' })
  source!: CveSource;

  @Field(() => Severity, { nullable: true, description: "The advisory's severity, the tracker's urgency (high is IMPORTANT) or the OSV record's priority (Ubuntu's high is IMPORTANT); null when none gives one." })
  severity!: Severity | null;

  @Field(() => Date, { description: "Since when: the machine's first stored assessment that listed an update fixing it." })
  exposedSince!: Date;

  @Field(() => ScheduledCveFix, { nullable: true, description: 'The scheduled deployment run that would install the fix; null when none would.' })
  scheduledFix!: ScheduledCveFix | null;
}

export const CveExposureConnection = ConnectionType('CveExposure', CveExposure, 'exposed machines');

@ObjectType({ description: 'A CVE (a publicly known vulnerability) and the fleet\'s exposure to it: machines missing an update that fixes it.' })
export class Cve {
  @Field(() => String, { description: 'The CVE id (CVE-2024-3094).' })
  id!: string;

  @Field(() => Severity, { nullable: true, description: 'The highest severity of the updates that fix it, as their advisories, the tracker or the OSV records rate it.' })
  severity!: Severity | null;

  @Field(() => Int, { description: 'Live machines that miss an update fixing it.' })
  machineCount!: number;

  @Field(() => [CveSource], { description: 'Where the fleet learned that updates fix it.' })
  sources!: CveSource[];

  @Field(() => String, { nullable: true, description: "The description an imported tracker or OSV CVE record gives, when one lists it." })
  description?: string | null;
}

export const CveConnection = ConnectionType('Cve', Cve, 'CVEs');

@InputType({ description: 'Which CVEs: every given condition holds.' })
export class CveFilter {
  @Field(() => [Severity], { nullable: true, description: 'Only CVEs of these severities.' })
  severities?: Severity[];

  @Field(() => String, { nullable: true, description: 'Case-insensitive part of the id ("2024-" for that year).' })
  idContains?: string;
}

@ObjectType({ description: 'An import of CVE fixes: the Debian security tracker, or OSV records.' })
export class CveTrackerImport {
  @Field(() => String, {
    description: "Whose fixes: DEBIAN (the tracker), OSV:UBUNTU or OSV:DEBIAN (OSV records of that distribution). importCveTracker answers OSV for an import of OSV records, which replaces the fixes of each distribution it holds records of.",
  })
  source!: string;

  @Field(() => String, { description: 'Where it was read from (a URL without its user and password, or a path on the server).' })
  location!: string;

  @Field(() => Date, { description: 'When it was imported.' })
  importedAt!: Date;

  @Field(() => Int, { description: 'Fixes it listed (one per CVE, source package and release).' })
  fixes!: number;

  @Field(() => Int, { description: 'Distinct CVEs among them.' })
  cves!: number;
}
