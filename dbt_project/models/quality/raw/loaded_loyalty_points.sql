{{ loaded_rows(source('loyalty', 'loyalty_points'), 'loyalty_points') }}
