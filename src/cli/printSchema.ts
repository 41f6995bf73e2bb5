import { printApiSchema } from '../api/schema.js';

export async function printSchema(): Promise<void> {
  process.stdout.write(await printApiSchema());
}
