/**
 * How long the API takes to parse and validate the worst documents it is sent, with the rules and
 * limits it runs (graphql-js's own rules and src/api/limits.ts, the default settings). Each runs
 * in the event loop before anything else can: this is how long one anonymous request can hold the
 * process. Three runs of each, median and spread, of the CPU time the process spent (user +
 * system: on a shared machine the wall time says more about the neighbours) and of the wall time.
 *
 *   npx tsx bench/validation.ts [--runs 3]
 */
import { parse, specifiedRules, validate } from 'graphql';
import { parseArgs } from 'node:util';
import { parseOptions, queryLimitsOf, queryLimitsRule } from '../src/api/limits.js';
import { buildApiSchema } from '../src/api/schema.js';
import { loadConfig } from '../src/config.js';

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' } } });
const runs = Number(values.runs);

const limits = loadConfig({}).limits;
const rules = [...specifiedRules, queryLimitsRule(queryLimitsOf(limits))];
const schema = await buildApiSchema();

const repeat = (n: number, piece: (i: number) => string, separator = ' ') => Array.from({ length: n }, (_, i) => piece(i)).join(separator);
// Each just under the default token limit (5,000), except the first, the probe's 900 bytes.
const documents: Record<string, string> = {
  'fragments spreading the next one twice, 21 deep': `{ ...F0 } ${repeat(21, (i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }`)} fragment F21 on Query { systemStatus { version } }`,
  'fragments spreading the next one twice, 490 deep': `{ ...F0 } ${repeat(490, (i) => `fragment F${i} on Query { ...F${i + 1} ...F${i + 1} }`)} fragment F490 on Query { __typename }`,
  'one field under one name 820 times (overlapping fields)': `{ ${repeat(820, () => 'a: systemStatus { version }')} }`,
  '__typename 4,900 times': `{ ${repeat(4900, () => '__typename')} }`,
  '300 fragments each asking for systemStatus (valid before, cost 30,300)': `{ ${repeat(300, (i) => `...A${i}`)} } ${repeat(300, (i) => `fragment A${i} on Query { systemStatus { version } }`)}`,
  'one field under 1,650 names (aliases)': `{ ${repeat(1650, (i) => `a${i}: __typename`)} }`,
  'a chain of 620 fragments': `{ ...F0 } ${repeat(620, (i) => `fragment F${i} on Query { ...F${i + 1} }`)} fragment F620 on Query { __typename }`,
  '1,200 variables': `query(${repeat(1200, (i) => `$v${i}: Int`)}) { __typename }`,
  '820 directives on one field': `{ __typename ${repeat(820, () => '@skip(if: false)')} }`,
};

const ms = (ns: bigint) => Number(ns) / 1e6;
const spread = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return `${sorted[Math.floor(sorted.length / 2)]!.toFixed(1)} (${sorted[0]!.toFixed(1)}-${sorted.at(-1)!.toFixed(1)})`;
};
console.log(`parse (maxTokens ${limits.graphqlMaxTokens}) and validate, ${runs} runs each: CPU ms, wall ms, median (min-max); errors of the first run`);
for (const [name, text] of Object.entries(documents)) {
  const times: number[] = [];
  const cpu: number[] = [];
  let outcome = '';
  for (let run = 0; run < runs; run++) {
    const cpuBefore = process.cpuUsage();
    const started = process.hrtime.bigint();
    try {
      const errors = validate(schema, parse(text, parseOptions(limits.graphqlMaxTokens)), rules);
      outcome ||= errors.length === 0 ? 'valid' : errors.map((e) => e.message.slice(0, 70)).slice(0, 2).join(' | ');
    } catch (error) {
      outcome ||= `parse: ${(error as Error).message.slice(0, 70)}`;
    }
    times.push(ms(process.hrtime.bigint() - started));
    const used = process.cpuUsage(cpuBefore);
    cpu.push((used.user + used.system) / 1000);
  }
  console.log(`${name}: CPU ${spread(cpu)} ms, wall ${spread(times)} ms; ${text.length} bytes; ${outcome}`);
}
