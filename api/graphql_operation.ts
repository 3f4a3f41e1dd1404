// Which operation a GraphQL request runs (query, mutation, subscription) and its name, before
// PostGraphile sees it: rate limiting picks its class by it, metrics and tracing label by its name.
// Parsed documents are remembered (LRU), as grafserv does, so a repeated query costs a map lookup.
import { parse, type OperationDefinitionNode } from 'postgraphile/graphql';

export type OperationInfo = { operationType: 'query' | 'mutation' | 'subscription'; operationName: string | null };

const MAX_CACHED = 500;
const cache = new Map<string, OperationDefinitionNode[] | null>();

function operationsOf(query: string): OperationDefinitionNode[] | null {
  const hit = cache.get(query);
  if (hit !== undefined) {
    cache.delete(query); // refresh its place in the LRU order
    cache.set(query, hit);
    return hit;
  }
  let ops: OperationDefinitionNode[] | null;
  try {
    ops = parse(query, { noLocation: true }).definitions.filter((d): d is OperationDefinitionNode => d.kind === 'OperationDefinition');
  } catch {
    ops = null; // a syntax error: PostGraphile reports it
  }
  cache.set(query, ops);
  if (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value!);
  return ops;
}

/** The operation the body selects; an unparseable or ambiguous document counts as a query named by the body. */
export function classifyOperation(query: unknown, operationName: unknown): OperationInfo {
  const name = typeof operationName === 'string' && operationName !== '' ? operationName : null;
  const ops = typeof query === 'string' ? operationsOf(query) : null;
  const op = ops ? (name ? ops.find((o) => o.name?.value === name) : ops.length === 1 ? ops[0] : undefined) : undefined;
  return { operationType: op?.operation ?? 'query', operationName: op?.name?.value ?? name };
}
