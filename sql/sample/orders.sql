-- The sample order schema: what a seller app stores from the SP-API Orders API. Used by the
-- demo, the tests and the benchmarks; `lethe-sample --reset` (re)creates it.
DROP TABLE IF EXISTS order_items, buyer_tax_classifications, buyer_tax_info, shipping_addresses,
  orders CASCADE;

CREATE TABLE orders (
  amazon_order_id    text        PRIMARY KEY,
  seller_id          text        NOT NULL,
  marketplace_id     text        NOT NULL,
  purchase_date      timestamptz NOT NULL,
  last_update_date   timestamptz NOT NULL,
  order_status       text        NOT NULL
    CHECK (order_status IN ('Pending', 'Unshipped', 'PartiallyShipped', 'Shipped', 'Canceled')),
  shipped_at         timestamptz,
  is_business_order  boolean     NOT NULL DEFAULT false,
  buyer_email        text,
  buyer_name         text
);
-- The purge walks due orders along their retention clocks: shipped ones by shipment time,
-- never-shipped ones by status and last update.
CREATE INDEX orders_shipped_at ON orders (shipped_at, amazon_order_id);
CREATE INDEX orders_unshipped ON orders (order_status, last_update_date, amazon_order_id)
  WHERE shipped_at IS NULL;

CREATE TABLE shipping_addresses (
  amazon_order_id  text PRIMARY KEY REFERENCES orders ON DELETE CASCADE,
  name             text,
  address_line1    text,
  address_line2    text,
  address_line3    text,
  city             text,
  county           text,
  district         text,
  state_or_region  text,
  postal_code      text,
  country_code     text,
  phone            text
);

CREATE TABLE buyer_tax_info (
  tax_info_id         bigint PRIMARY KEY,
  amazon_order_id     text   NOT NULL UNIQUE REFERENCES orders ON DELETE CASCADE,
  company_legal_name  text,
  taxing_region       text
);

CREATE TABLE buyer_tax_classifications (
  tax_info_id  bigint NOT NULL REFERENCES buyer_tax_info ON DELETE CASCADE,
  name         text   NOT NULL,
  value        text   NOT NULL
);
CREATE INDEX buyer_tax_classifications_info ON buyer_tax_classifications (tax_info_id);

-- Not PII: must survive every purge untouched.
CREATE TABLE order_items (
  order_item_id    text          PRIMARY KEY,
  amazon_order_id  text          NOT NULL REFERENCES orders ON DELETE CASCADE,
  asin             text          NOT NULL,
  seller_sku       text          NOT NULL,
  title            text          NOT NULL,
  quantity         integer       NOT NULL,
  item_price       numeric(12,2) NOT NULL,
  currency         char(3)       NOT NULL
);
CREATE INDEX order_items_order ON order_items (amazon_order_id);
