#!/usr/bin/env node
// The `ballast` command. Installed from npm (under node_modules) it runs the compiled CLI in dist/; in a
// checkout it runs the TypeScript source, which Node 22.18+ strips itself outside node_modules, so a
// stale dist/ from an earlier build never shadows the code being edited.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const source = new URL('../src/cli.ts', import.meta.url);
const installed = fileURLToPath(import.meta.url).split(/[\\/]/).includes('node_modules');
await import(!installed && existsSync(source) ? source.href : new URL('../dist/src/cli.js', import.meta.url).href);
