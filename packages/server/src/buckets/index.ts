export { ColumnCatalog } from './catalog.js'
export { type Descendant, findDescendants, inheritingChildren, type RebucketRoot } from './descendants.js'
export {
  type BucketFunctionOp,
  type BucketRequest,
  BucketResolver,
  type BucketResult,
  type BucketRule,
  bucketRule,
  bucketsFromValue,
  GLOBAL_BUCKET,
  normalizeBuckets,
  type TextRow,
} from './resolver.js'
