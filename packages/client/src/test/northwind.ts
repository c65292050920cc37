/**
 * Northwind (PROTOCOL.md §5) for the client's end-to-end tests: DDL, registry and a small seed.
 */
export const NORTHWIND_DDL = `
CREATE TYPE order_status AS ENUM ('pending', 'processing', 'shipped', 'delivered', 'cancelled');
CREATE TABLE orders (
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
CREATE TABLE order_details (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  order_id uuid NOT NULL REFERENCES orders(id),
  product_name text NOT NULL DEFAULT '',
  quantity integer NOT NULL DEFAULT 1,
  unit_price numeric(10,2) NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
CREATE TABLE products (
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
CREATE TABLE categories (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid,
  name text NOT NULL DEFAULT '',
  description text NOT NULL DEFAULT '',
  search_tags text[] NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  deleted_at timestamptz
);
ALTER TABLE orders REPLICA IDENTITY FULL;
ALTER TABLE order_details REPLICA IDENTITY FULL;
ALTER TABLE products REPLICA IDENTITY FULL;
ALTER TABLE categories REPLICA IDENTITY FULL;
`

export const NORTHWIND_SEED = `
INSERT INTO products (id, name, unit_price, units_in_stock, discontinued, thumbnail) VALUES
  ('10000000-0000-4000-8000-000000000001', 'Widget A', 9.99, 100, false, '\\x0102'),
  ('10000000-0000-4000-8000-000000000002', 'Widget B', 19.99, 50, false, NULL),
  ('10000000-0000-4000-8000-000000000003', 'Gadget C', 49.99, 25, false, NULL),
  ('10000000-0000-4000-8000-000000000004', 'Gizmo D', 4.99, 200, false, NULL),
  ('10000000-0000-4000-8000-000000000005', 'Thingamajig E', 99.99, 0, true, NULL);
INSERT INTO categories (id, user_id, name, description, search_tags) VALUES
  ('20000000-0000-4000-8000-000000000001', NULL, 'Electronics', 'Electronic devices', '{tech,gadgets}'),
  ('20000000-0000-4000-8000-000000000002', NULL, 'Office Supplies', 'Office things', '{office,paper}'),
  ('20000000-0000-4000-8000-000000000003', NULL, 'Hardware', 'Tools', '{tools,diy}');
`

/** Table configs in registration order (§5.2), in the server's `TableConfig` shape. */
export const NORTHWIND_TABLES = [
  { tableName: 'orders', ownerColumn: 'user_id' },
  { tableName: 'order_details', parentTable: 'orders', parentFkColumn: 'order_id', dependencies: ['orders'] },
  { tableName: 'products', pushPolicy: 'disabled' as const },
  { tableName: 'categories', ownerColumn: 'user_id', allowGlobalRead: true },
]
