#!/usr/bin/env node
// The `ballast` command. In the published package it runs the compiled CLI (dist/); in a checkout that
// has not been built it runs the TypeScript source, which Node 22.18+ runs directly outside node_modules.
import { existsSync } from 'node:fs';

const compiled = new URL('../dist/src/cli.js', import.meta.url);
await import(existsSync(compiled) ? compiled.href : new URL('../src/cli.ts', import.meta.url).href);
