// Depth and cost limits for GraphQL documents, and page sizes.
//   depth: the deepest chain of nested selections, fragments expanded (a validation rule: grafserv caches
//          validation per document, so a repeated query is checked once). Introspection is not counted
//          here: graphql-js's MaxIntrospectionDepthRule bounds its nesting.
//   cost:  the estimated number of values the response holds: every field costs 1, multiplied by the
//          sizes of the lists above it. A list's size is its `first`/`last` argument, a literal or the
//          variable's value in this request (so cost is checked per request, not per document), else
//          GRAPHQL_DEFAULT_LIST_SIZE. Each introspection root field (__schema, __type, aliased or not)
//          costs INTROSPECTION_COST; __typename is free.
//   pages: PostGraphile has no default page size, so a connection (or list) with a `first` argument and
//          neither first nor last gets first: GRAPHQL_DEFAULT_PAGE_SIZE (the document is rewritten once
//          and cached; a first/last variable that is null in a request gets that value too), and a
//          first/last over GRAPHQL_MAX_PAGE_SIZE is refused.
//   introspection: GRAPHQL_INTROSPECTION=off refuses __schema and __type (e.g. in production).
import {
  GraphQLError, getNamedType, getNullableType, isListType, isObjectType, isInterfaceType, Kind, TypeInfo,
  visit, visitWithTypeInfo,
  type ArgumentNode, type ASTVisitor, type DocumentNode, type FieldNode, type FragmentDefinitionNode, type GraphQLField,
  type GraphQLNamedType, type GraphQLSchema, type OperationDefinitionNode, type SelectionSetNode, type ValidationContext,
  type ValueNode, type VariableDefinitionNode,
} from 'postgraphile/graphql';

export type QueryLimits = {
  maxDepth: number;
  maxCost: number;
  defaultListSize: number;
  defaultPageSize: number;
  maxPageSize: number;
  introspection: boolean;
};

export const TOO_DEEP = 'QUERY_TOO_DEEP';
export const TOO_COSTLY = 'QUERY_TOO_COSTLY';
export const PAGE_TOO_LARGE = 'PAGE_TOO_LARGE';
export const INTROSPECTION_DISABLED = 'INTROSPECTION_DISABLED';
/** The refusals of this file: answered 400 (api/postgraphile_plugin.ts). */
export const LIMIT_CODES: readonly string[] = [TOO_DEEP, TOO_COSTLY, PAGE_TOO_LARGE, INTROSPECTION_DISABLED];
/** What one __schema or __type costs: a whole schema's worth of values, so aliasing it adds up. */
export const INTROSPECTION_COST = 10_000;
const INTROSPECTION_ROOTS = new Set(['__schema', '__type']);

type Walk = {
  schema: GraphQLSchema;
  fragments: Map<string, FragmentDefinitionNode>;
  limits: QueryLimits;
  variables: Map<string, VariableDefinitionNode>;
  values: Record<string, unknown>; // this request's variables ({} at validation time)
  stack: Set<string>; // fragment names being expanded (cycles are reported by another rule)
  pageTooLarge: { field: string; size: number } | null;
};

function listSize(w: Walk, field: string, args: readonly { name: { value: string }; value: ValueNode }[] | undefined): number {
  for (const a of args ?? []) {
    if (a.name.value !== 'first' && a.name.value !== 'last') continue;
    let size: number | null = null;
    const v = a.value;
    if (v.kind === Kind.INT) size = Number(v.value);
    else if (v.kind === Kind.VARIABLE) {
      const value = w.values[v.name.value];
      const fallback = w.variables.get(v.name.value)?.defaultValue;
      if (typeof value === 'number') size = value;
      else if (value === undefined && fallback?.kind === Kind.INT) size = Number(fallback.value);
    }
    if (size === null || !Number.isFinite(size)) continue;
    size = Math.max(0, Math.floor(size));
    if (size > w.limits.maxPageSize && !w.pageTooLarge) w.pageTooLarge = { field, size };
    return size;
  }
  return w.limits.defaultListSize;
}

function isConnection(type: GraphQLNamedType): boolean {
  return isObjectType(type) && 'pageInfo' in type.getFields() && ('nodes' in type.getFields() || 'edges' in type.getFields());
}

/** Returns [depth, cost] of a selection set on parentType. */
function measure(w: Walk, set: SelectionSetNode, parentType: GraphQLNamedType | undefined, insideConnection: boolean): [number, number] {
  let depth = 0;
  let cost = 0;
  for (const sel of set.selections) {
    if (sel.kind === Kind.FIELD) {
      const name = sel.name.value;
      if (INTROSPECTION_ROOTS.has(name)) {
        cost += INTROSPECTION_COST;
        continue;
      }
      if (name.startsWith('__')) continue; // __typename: free
      const fields = parentType && (isObjectType(parentType) || isInterfaceType(parentType)) ? parentType.getFields() : undefined;
      const def: GraphQLField<unknown, unknown> | undefined = fields?.[name];
      const type = def ? getNamedType(def.type) : undefined;
      let multiplier = 1;
      if (def && type && isConnection(type)) multiplier = listSize(w, name, sel.arguments);
      else if (def && isListType(getNullableType(def.type)) && !insideConnection) multiplier = listSize(w, name, sel.arguments);
      const [d, c] = sel.selectionSet ? measure(w, sel.selectionSet, type, type ? isConnection(type) : false) : [0, 0];
      depth = Math.max(depth, 1 + d);
      cost += multiplier * (1 + c);
    } else if (sel.kind === Kind.INLINE_FRAGMENT) {
      const type = sel.typeCondition ? w.schema.getType(sel.typeCondition.name.value) ?? undefined : parentType;
      const [d, c] = measure(w, sel.selectionSet, type, insideConnection);
      depth = Math.max(depth, d);
      cost += c;
    } else {
      const name = sel.name.value;
      const frag = w.fragments.get(name);
      if (!frag || w.stack.has(name)) continue;
      w.stack.add(name);
      const type = w.schema.getType(frag.typeCondition.name.value) ?? undefined;
      const [d, c] = measure(w, frag.selectionSet, type, insideConnection);
      w.stack.delete(name);
      depth = Math.max(depth, d);
      cost += c;
    }
    if (cost > Number.MAX_SAFE_INTEGER) cost = Number.MAX_SAFE_INTEGER;
  }
  return [depth, cost];
}

function rootType(schema: GraphQLSchema, node: OperationDefinitionNode) {
  return (node.operation === 'query' ? schema.getQueryType()
    : node.operation === 'mutation' ? schema.getMutationType() : schema.getSubscriptionType()) ?? undefined;
}

function fragmentsOf(document: DocumentNode): Map<string, FragmentDefinitionNode> {
  return new Map(document.definitions.filter((d): d is FragmentDefinitionNode => d.kind === Kind.FRAGMENT_DEFINITION).map((d) => [d.name.value, d]));
}

/** Validation: depth, and introspection when it is switched off. Cost depends on the variables: checkCost, per request. */
export function queryLimitsRule(limits: QueryLimits) {
  return function QueryLimitsRule(ctx: ValidationContext): ASTVisitor {
    return {
      Field(node) {
        if (!limits.introspection && INTROSPECTION_ROOTS.has(node.name.value)) {
          ctx.reportError(new GraphQLError(`introspection (${node.name.value}) is switched off on this server (GRAPHQL_INTROSPECTION=off)`,
            { nodes: [node], extensions: { code: INTROSPECTION_DISABLED } }));
        }
      },
      OperationDefinition(node) {
        const schema = ctx.getSchema();
        const walk: Walk = { schema, fragments: fragmentsOf(ctx.getDocument()), limits, variables: new Map(), values: {}, stack: new Set(), pageTooLarge: null };
        const [depth] = measure(walk, node.selectionSet, rootType(schema, node), false);
        const label = node.name ? `operation ${node.name.value}` : 'the operation';
        if (depth > limits.maxDepth) {
          ctx.reportError(new GraphQLError(
            `${label} is ${depth} levels deep; the limit is ${limits.maxDepth} (GRAPHQL_MAX_DEPTH): select fewer nested fields`,
            { nodes: [node], extensions: { code: TOO_DEEP, depth, maxDepth: limits.maxDepth } }));
        }
      },
    };
  };
}

/** The operation a request runs (by operationName, else the only one). */
function operationOf(document: DocumentNode, operationName: string | null | undefined): OperationDefinitionNode | undefined {
  const ops = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  return operationName ? ops.find((o) => o.name?.value === operationName) : ops.length === 1 ? ops[0] : undefined;
}

/** The request's cost with its variables' values; a GraphQLError when it is over a limit. */
export function checkCost(schema: GraphQLSchema, document: DocumentNode, operationName: string | null | undefined,
                          values: Record<string, unknown>, limits: QueryLimits): GraphQLError | null {
  const node = operationOf(document, operationName);
  if (!node) return null; // grafast reports it
  const variables = new Map((node.variableDefinitions ?? []).map((v) => [v.variable.name.value, v]));
  const walk: Walk = { schema, fragments: fragmentsOf(document), limits, variables, values, stack: new Set(), pageTooLarge: null };
  const [, cost] = measure(walk, node.selectionSet, rootType(schema, node), false);
  const label = node.name ? `operation ${node.name.value}` : 'the operation';
  if (walk.pageTooLarge) {
    const { field, size } = walk.pageTooLarge;
    return new GraphQLError(`${label} asks ${field} for ${size} items; the largest page is ${limits.maxPageSize} (GRAPHQL_MAX_PAGE_SIZE): page through with first/after`,
      { nodes: [node], extensions: { code: PAGE_TOO_LARGE, size, maxPageSize: limits.maxPageSize } });
  }
  if (cost > limits.maxCost) {
    return new GraphQLError(
      `${label} could return about ${cost} values; the limit is ${limits.maxCost} (GRAPHQL_MAX_COST): pass smaller first/last arguments or select fewer fields`,
      { nodes: [node], extensions: { code: TOO_COSTLY, cost, maxCost: limits.maxCost } });
  }
  return null;
}

/** A document whose unpaginated connections and lists have first: pageSize, and the variables that are a first/last. */
export type Paged = { document: DocumentNode; pageVariables: string[] };

/**
 * Gives every field that takes a `first` argument and got neither first nor last `first: pageSize`.
 * The result is cached per document (grafserv reuses parsed documents), so grafast's plan cache still hits.
 */
export function pagedDocument(schema: GraphQLSchema, document: DocumentNode, pageSize: number, cache: WeakMap<DocumentNode, Paged>): Paged {
  const hit = cache.get(document);
  if (hit) return hit;
  const typeInfo = new TypeInfo(schema);
  const pageVariables = new Set<string>();
  const rewritten = visit(document, visitWithTypeInfo(typeInfo, {
    Field(node: FieldNode) {
      const def = typeInfo.getFieldDef();
      if (!def || !def.args.some((a) => a.name === 'first')) return undefined;
      const paging = (node.arguments ?? []).filter((a) => a.name.value === 'first' || a.name.value === 'last');
      for (const a of paging) if (a.value.kind === Kind.VARIABLE) pageVariables.add(a.value.name.value);
      if (paging.length > 0) return undefined;
      const first: ArgumentNode = { kind: Kind.ARGUMENT, name: { kind: Kind.NAME, value: 'first' }, value: { kind: Kind.INT, value: String(pageSize) } };
      return { ...node, arguments: [...(node.arguments ?? []), first] };
    },
  }));
  const paged = { document: rewritten, pageVariables: [...pageVariables] };
  cache.set(document, paged);
  return paged;
}

/** The request's variables with a null or missing first/last (without a default) set to pageSize. */
export function pagedVariables(paged: Paged, document: DocumentNode, operationName: string | null | undefined,
                               values: Record<string, unknown>, pageSize: number): Record<string, unknown> {
  if (paged.pageVariables.length === 0) return values;
  const defaults = new Set((operationOf(document, operationName)?.variableDefinitions ?? []).filter((v) => v.defaultValue).map((v) => v.variable.name.value));
  let out = values;
  for (const name of paged.pageVariables) {
    if (values[name] === null || (values[name] === undefined && !defaults.has(name))) {
      if (out === values) out = { ...values };
      out[name] = pageSize;
    }
  }
  return out;
}
