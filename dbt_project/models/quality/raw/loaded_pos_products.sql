{{ loaded_rows(source('pos', 'pos_products'), 'pos_products') }}
