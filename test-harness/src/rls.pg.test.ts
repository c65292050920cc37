import { Registry, rlsStatements } from '@synchro/server'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createTestApp, NORTHWIND_TABLES, registerNorthwind, type TestApp } from './index.js'
import { createAppRolePool } from './roles.js'

let app: TestApp
beforeAll(async () => {
  app = await createTestApp()
})
afterAll(async () => {
  await app.close()
})

describe('§2.6 / §3 H 105 generated RLS policies', () => {
  it('generates exactly the 21 statements for the test registry', () => {
    const s = rlsStatements(registerNorthwind(new Registry(), NORTHWIND_TABLES))
    expect(s).toHaveLength(21)
    expect(s.slice(0, 6)).toEqual([
      'ALTER TABLE "orders" ENABLE ROW LEVEL SECURITY',
      'ALTER TABLE "orders" FORCE ROW LEVEL SECURITY',
      `CREATE POLICY "sync_read_orders" ON "orders" FOR SELECT USING ("user_id"::text = current_setting('app.user_id', true))`,
      `CREATE POLICY "sync_write_ins_orders" ON "orders" FOR INSERT WITH CHECK ("user_id"::text = current_setting('app.user_id', true))`,
      `CREATE POLICY "sync_write_upd_orders" ON "orders" FOR UPDATE USING ("user_id"::text = current_setting('app.user_id', true))`,
      `CREATE POLICY "sync_write_del_orders" ON "orders" FOR DELETE USING ("user_id"::text = current_setting('app.user_id', true))`,
    ])
    expect(s[8]).toBe(
      `CREATE POLICY "sync_read_order_details" ON "order_details" FOR SELECT USING (EXISTS (SELECT 1 FROM "orders" p1 WHERE p1."id" = "order_details"."order_id" AND p1."user_id"::text = current_setting('app.user_id', true)))`,
    )
    expect(s.slice(12, 15)).toEqual([
      'ALTER TABLE "products" ENABLE ROW LEVEL SECURITY',
      'ALTER TABLE "products" FORCE ROW LEVEL SECURITY',
      'CREATE POLICY "sync_read_products" ON "products" FOR SELECT USING (true)',
    ])
    expect(s[17]).toBe(
      `CREATE POLICY "sync_read_categories" ON "categories" FOR SELECT USING (("user_id" IS NULL OR "user_id"::text = current_setting('app.user_id', true)))`,
    )
    expect(s[18]).not.toContain('IS NULL')
  })

  it('applying is idempotent and the policies bind a non-superuser role', async () => {
    await app.engine.applyRls()
    await app.engine.applyRls() // re-running must not fail
    await app.db.pool.query(`
      INSERT INTO orders (id, user_id) VALUES ('00000000-0000-4000-8000-00000000000a', '00000000-0000-4000-8000-0000000000aa'),
                                              ('00000000-0000-4000-8000-00000000000b', '00000000-0000-4000-8000-0000000000bb');
      INSERT INTO categories (id, user_id, name) VALUES ('00000000-0000-4000-8000-00000000000c', NULL, 'global')`)
    const pool = await createAppRolePool(app.db)
    try {
      const c = await pool.connect()
      try {
        await c.query('BEGIN')
        await c.query(`SELECT set_config('app.user_id', '00000000-0000-4000-8000-0000000000aa', true)`)
        const { rows } = await c.query('SELECT id FROM orders')
        expect(rows.map((r) => r.id)).toEqual(['00000000-0000-4000-8000-00000000000a'])
        const cats = await c.query('SELECT id FROM categories')
        expect(cats.rowCount).toBe(1)
        const upd = await c.query(`UPDATE categories SET name = 'x'`)
        expect(upd.rowCount).toBe(0)
        await expect(c.query(`INSERT INTO products (name) VALUES ('p')`)).rejects.toThrow(/row-level security/)
        await c.query('ROLLBACK')
      } finally {
        c.release()
      }
    } finally {
      await pool.end()
    }
  })
})
