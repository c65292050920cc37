import type { TableConfig } from '@synchro/server'

// The demo is a copy of the Northwind reference schema (PROTOCOL.md §5), not an import of the test harness:
// the daemon ships without test code. Keep the two in step when the reference schema changes.

/** The reference test schema of PROTOCOL.md §5.1 (idempotent). */
export const DEMO_SCHEMA_SQL = `
DO $$ BEGIN
  CREATE TYPE order_status AS ENUM ('pending', 'processing', 'shipped', 'delivered', 'cancelled');
EXCEPTION WHEN duplicate_object THEN NULL; END $$;

CREATE TABLE IF NOT EXISTS orders (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL,
  status order_status NOT NULL DEFAULT 'pending',
  order_date timestamptz NOT NULL DEFAULT now(),
  required_date date,
  preferred_ship_time time,
  ship_address text NOT NULL DEFAULT '',
  metadata jsonb NOT NULL DEFAULT '{}',
  total_cents bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE TABLE IF NOT EXISTS order_details (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  order_id uuid NOT NULL REFERENCES orders(id) ON DELETE CASCADE,
  product_name text NOT NULL DEFAULT '',
  quantity integer NOT NULL DEFAULT 1,
  unit_price numeric(10,2) NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE INDEX IF NOT EXISTS order_details_order_id_idx ON order_details (order_id);
CREATE TABLE IF NOT EXISTS products (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL DEFAULT '',
  unit_price numeric(10,2) NOT NULL DEFAULT 0,
  units_in_stock integer NOT NULL DEFAULT 0,
  discontinued boolean NOT NULL DEFAULT false,
  thumbnail bytea,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE TABLE IF NOT EXISTS categories (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid,
  name text NOT NULL DEFAULT '',
  description text NOT NULL DEFAULT '',
  search_tags text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
-- Only when needed: ALTER TABLE takes an exclusive lock, and a restart while the app writes must not deadlock.
DO $$ DECLARE t text; BEGIN
  FOREACH t IN ARRAY ARRAY['orders', 'order_details', 'products', 'categories'] LOOP
    IF (SELECT relreplident FROM pg_class WHERE oid = t::regclass) <> 'f' THEN
      EXECUTE format('ALTER TABLE %I REPLICA IDENTITY FULL', t);
    END IF;
  END LOOP;
END $$;
`

/** Seed rows with real UUIDs (§5.3): 5 products and 3 global categories. */
export const DEMO_SEED_SQL = `
INSERT INTO products (id, name, unit_price, units_in_stock, discontinued, thumbnail) VALUES
  ('00000000-0000-4000-8000-000000000001', 'Widget A', 9.99, 100, false, '\\x0102'),
  ('00000000-0000-4000-8000-000000000002', 'Widget B', 19.99, 50, false, NULL),
  ('00000000-0000-4000-8000-000000000003', 'Gadget C', 49.99, 25, false, NULL),
  ('00000000-0000-4000-8000-000000000004', 'Gizmo D', 4.99, 200, false, NULL),
  ('00000000-0000-4000-8000-000000000005', 'Thingamajig E', 99.99, 0, true, NULL)
ON CONFLICT DO NOTHING;
INSERT INTO categories (id, user_id, name, description, search_tags) VALUES
  ('00000000-0000-4000-8000-000000000101', NULL, 'Electronics', 'Electronic devices', '{tech,gadgets}'),
  ('00000000-0000-4000-8000-000000000102', NULL, 'Office Supplies', 'Things for the office', '{office,paper}'),
  ('00000000-0000-4000-8000-000000000103', NULL, 'Hardware', 'Tools and hardware', '{tools,diy}')
ON CONFLICT DO NOTHING;
`

/** The registry of §5.2, in registration order. */
export const DEMO_TABLES: TableConfig[] = [
  { tableName: 'orders', ownerColumn: 'user_id' },
  { tableName: 'order_details', parentTable: 'orders', parentFkColumn: 'order_id', dependencies: ['orders'] },
  { tableName: 'products', pushPolicy: 'disabled' },
  { tableName: 'categories', ownerColumn: 'user_id', allowGlobalRead: true },
]
