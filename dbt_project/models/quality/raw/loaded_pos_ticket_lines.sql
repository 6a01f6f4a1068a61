{{ loaded_rows(source('pos', 'pos_ticket_lines'), 'pos_ticket_lines') }}
