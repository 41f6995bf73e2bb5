import { defineConfig } from 'drizzle-kit';

// `npm run db:generate -- --name <what_changed>` writes a named migration into migrations/.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './migrations',
});
