// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = [...builtinModules, ...builtinModules.map((name) => `node:${name}`)];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', '.fleetpatch/**', '.test-data/**', 'web/dist/**', '**/*.generated.ts'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts', '**/*.tsx'],
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no Node built-ins, and activities
    // are imported for their types only (their code runs on the worker, never in the workflow).
    files: ['src/workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: nodeBuiltins.map((name) => ({ name, message: 'Workflow code must stay deterministic: no Node built-ins in src/workflows.' })),
          patterns: [
            {
              group: ['**/activities', '**/activities/**'],
              allowTypeImports: true,
              message: 'Import activities into workflows as types only (import type), and call them through proxyActivities.',
            },
          ],
        },
      ],
    },
  },
  {
    // The operator commands are an API client: GraphQL over HTTP and WebSocket with a token, never the
    // database, Temporal or the server's code (docs/cli.md). The product's pure rules (src/fleet) are
    // shared, so that a deployments file is checked by the very function the API runs.
    files: ['src/cli/operator/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/db/*', '**/api/*', '**/api/**', '**/temporal/*', '**/events/*', '**/activities/*', '**/workflows/*', '**/devstack/*', 'postgres', 'drizzle-orm', 'drizzle-orm/*', '@temporalio/*'],
              message: 'The operator CLI talks to the API only (GraphQL over HTTP/WebSocket): no database, Temporal or server code in src/cli/operator.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
);
