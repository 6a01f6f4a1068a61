{{ loaded_rows(source('pos', 'pos_tickets'), 'pos_tickets') }}
