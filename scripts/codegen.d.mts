/** Types of scripts/codegen.mjs, for the drift test. */
export interface CodegenTarget {
  name: string;
  documents: string;
  output: string;
  documentMode: 'string' | 'documentNode';
}
export const TARGETS: CodegenTarget[];
export function generate(target: CodegenTarget): Promise<string>;
export function writeAll(): Promise<void>;
