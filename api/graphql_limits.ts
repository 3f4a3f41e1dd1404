// Depth and cost limits for GraphQL documents, as validation rules (grafserv caches validation per
// document, so a repeated query is checked once). Introspection fields are not counted.
//   depth: the deepest chain of nested selections, fragments expanded;
//   cost:  the estimated number of values the response holds: every field costs 1, multiplied by the
//          sizes of the lists above it. A list's size is its `first`/`last` argument when given as a
//          literal, the variable's default when given as a variable, else GRAPHQL_DEFAULT_LIST_SIZE
//          (variables' values are not known at validation time).
import {
  GraphQLError, getNamedType, getNullableType, isListType, isObjectType, isInterfaceType, Kind,
  type ASTVisitor, type FragmentDefinitionNode, type GraphQLField, type GraphQLNamedType, type SelectionSetNode,
  type ValidationContext, type ValueNode, type VariableDefinitionNode,
} from 'postgraphile/graphql';

export type QueryLimits = { maxDepth: number; maxCost: number; defaultListSize: number };

export const TOO_DEEP = 'QUERY_TOO_DEEP';
export const TOO_COSTLY = 'QUERY_TOO_COSTLY';

type Walk = {
  ctx: ValidationContext;
  limits: QueryLimits;
  variables: Map<string, VariableDefinitionNode>;
  stack: Set<string>; // fragment names being expanded (cycles are reported by another rule)
};

function listSize(w: Walk, args: readonly { name: { value: string }; value: ValueNode }[] | undefined): number {
  for (const a of args ?? []) {
    if (a.name.value !== 'first' && a.name.value !== 'last') continue;
    let v: ValueNode | undefined = a.value;
    if (v.kind === Kind.VARIABLE) v = w.variables.get(v.name.value)?.defaultValue;
    if (v?.kind === Kind.INT) return Math.max(0, Number(v.value));
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
      if (name.startsWith('__')) continue; // __typename, __schema, __type: not counted
      const fields = parentType && (isObjectType(parentType) || isInterfaceType(parentType)) ? parentType.getFields() : undefined;
      const def: GraphQLField<unknown, unknown> | undefined = fields?.[name];
      const type = def ? getNamedType(def.type) : undefined;
      let multiplier = 1;
      if (def && type && isConnection(type)) multiplier = listSize(w, sel.arguments);
      else if (def && isListType(getNullableType(def.type)) && !insideConnection) multiplier = listSize(w, sel.arguments);
      const [d, c] = sel.selectionSet ? measure(w, sel.selectionSet, type, type ? isConnection(type) : false) : [0, 0];
      depth = Math.max(depth, 1 + d);
      cost += multiplier * (1 + c);
    } else if (sel.kind === Kind.INLINE_FRAGMENT) {
      const type = sel.typeCondition ? w.ctx.getSchema().getType(sel.typeCondition.name.value) ?? undefined : parentType;
      const [d, c] = measure(w, sel.selectionSet, type, insideConnection);
      depth = Math.max(depth, d);
      cost += c;
    } else {
      const name = sel.name.value;
      const frag: FragmentDefinitionNode | null | undefined = w.ctx.getFragment(name);
      if (!frag || w.stack.has(name)) continue;
      w.stack.add(name);
      const type = w.ctx.getSchema().getType(frag.typeCondition.name.value) ?? undefined;
      const [d, c] = measure(w, frag.selectionSet, type, insideConnection);
      w.stack.delete(name);
      depth = Math.max(depth, d);
      cost += c;
    }
    if (cost > Number.MAX_SAFE_INTEGER) cost = Number.MAX_SAFE_INTEGER;
  }
  return [depth, cost];
}

export function queryLimitsRule(limits: QueryLimits) {
  return function QueryLimitsRule(ctx: ValidationContext): ASTVisitor {
    return {
      OperationDefinition(node) {
        const schema = ctx.getSchema();
        const root = node.operation === 'query' ? schema.getQueryType()
          : node.operation === 'mutation' ? schema.getMutationType() : schema.getSubscriptionType();
        const variables = new Map((node.variableDefinitions ?? []).map((v) => [v.variable.name.value, v]));
        const [depth, cost] = measure({ ctx, limits, variables, stack: new Set() }, node.selectionSet, root ?? undefined, false);
        const label = node.name ? `operation ${node.name.value}` : 'the operation';
        if (depth > limits.maxDepth) {
          ctx.reportError(new GraphQLError(
            `${label} is ${depth} levels deep; the limit is ${limits.maxDepth} (GRAPHQL_MAX_DEPTH): select fewer nested fields`,
            { nodes: [node], extensions: { code: TOO_DEEP, depth, maxDepth: limits.maxDepth } }));
        }
        if (cost > limits.maxCost) {
          ctx.reportError(new GraphQLError(
            `${label} could return about ${cost} values; the limit is ${limits.maxCost} (GRAPHQL_MAX_COST): pass smaller first/last arguments or select fewer fields`,
            { nodes: [node], extensions: { code: TOO_COSTLY, cost, maxCost: limits.maxCost } }));
        }
        return false; // measure() walked it already
      },
    };
  };
}
